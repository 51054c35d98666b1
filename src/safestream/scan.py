"""Batch scan of files and folders: hash in parallel worker processes, match here.

Hashing (decode + PDQ) is the CPU cost, so it runs in a process pool over all
cores; matching is microseconds per image and stays in the parent, which
holds the only copy of the index and the only database connection.

Videos (told apart by content) are hashed in the workers too — file digests and
the PDQ of frames sampled ``video_fps`` times a second — and checked here with
:func:`safestream.engine.video.check_video`: digests against hash banks, every
frame against image banks (with its timestamp), and banked videos.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safestream.engine.check import Engine
from safestream.engine.verdict import Verdict
from safestream.engine.video import VideoCheck, check_video
from safestream.errors import InputError
from safestream.scan_worker import HashJobOptions, HashJobResult, hash_one
from safestream.signals.hashing import ImageHashes
from safestream.signals.video import VideoHashes

#: Error kinds (:func:`safestream.errors.error_kind`) of files known to be videos.
VIDEO_ERROR_KINDS = frozenset(
    {
        "video",
        "corrupt_video",
        "no_frames",
        "no_video_stream",
        "video_too_large",
        "too_many_video_streams",
    }
)


@dataclass(frozen=True)
class ScanRecord:
    """The result for one file: a verdict, or an error that stopped it."""

    path: str
    verdict: Verdict | None = None
    error_kind: str | None = None
    error: str | None = None
    #: Set for videos: where frames matched and which banked videos matched.
    video: VideoCheck | None = None

    @property
    def is_video(self) -> bool:
        """True for a video: checked as one, or refused with a video error."""
        return self.video is not None or self.error_kind in VIDEO_ERROR_KINDS

    @property
    def outcome(self) -> str:
        """``match``, ``no_match``, ``suppressed`` or ``error``."""
        return self.verdict.outcome if self.verdict else "error"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (one JSON line of ``scan`` output)."""
        out: dict[str, Any] = {"path": self.path, "outcome": self.outcome}
        if self.verdict is not None:
            v = self.verdict.to_dict()
            out.update(
                matches=v["matches"],
                suppressed=v["suppressed"],
                reasons=v["reasons"],
                signals=v["signals"],
            )
            if self.video is not None:
                out["frame_matches"] = [f.to_dict() for f in self.video.frame_matches]
                out["videos"] = [m.to_dict() for m in self.video.videos]
        else:
            out["error"] = {"kind": self.error_kind, "message": self.error}
        if self.is_video:
            out["kind"] = "video"
        return out


@dataclass
class ScanSummary:
    """Counts by outcome and error kind."""

    files: int = 0
    #: Files that were videos (checked, or refused with a video error).
    videos: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)

    def add(self, record: ScanRecord) -> None:
        """Count one record."""
        self.files += 1
        if record.is_video:
            self.videos += 1
        self.outcomes[record.outcome] = self.outcomes.get(record.outcome, 0) + 1
        if record.error_kind:
            self.error_kinds[record.error_kind] = self.error_kinds.get(record.error_kind, 0) + 1

    @property
    def matched(self) -> int:
        """Files with at least one match."""
        return self.outcomes.get("match", 0)

    @property
    def errors(self) -> int:
        """Files that could not be checked."""
        return self.outcomes.get("error", 0)


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every regular file under ``paths`` (recursive, sorted, symlinks not followed)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    candidate = Path(root) / name
                    if candidate.is_file() and not candidate.is_symlink():
                        yield candidate
        else:
            yield path


#: Files handed to the pool at a time: bounds memory on scans of millions of files.
WINDOW = 2048


def _hash_all(
    jobs: Iterator[tuple[str, HashJobOptions]], pool: ProcessPoolExecutor | None
) -> Iterator[HashJobResult]:
    if pool is None:
        yield from map(hash_one, jobs)
        return
    while window := list(itertools.islice(jobs, WINDOW)):
        yield from pool.map(hash_one, window, chunksize=8)


def scan(
    engine: Engine,
    paths: Iterable[Path],
    *,
    workers: int | None = None,
    on_record: Callable[[ScanRecord], None] | None = None,
    video_fps: float = 1.0,
) -> ScanSummary:
    """Scan files and folders, calling ``on_record`` for each file as it finishes.

    Videos are sampled ``video_fps`` frames a second; ``engine.options.max_pixels``
    bounds image pixels and each video frame's pixels.
    """
    summary = ScanSummary()
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    if n_workers < 1:
        raise InputError("workers must be at least 1")
    o = engine.options
    if not video_fps > 0:
        raise InputError(f"video_fps must be > 0, got {video_fps}")
    job_options: HashJobOptions = (o.mode, o.min_quality, o.dihedral, o.max_pixels, video_fps)
    jobs = ((str(f), job_options) for f in iter_files(paths))
    pool: ProcessPoolExecutor | None = None
    if n_workers > 1:
        # spawn, not fork: the parent holds database connections and index
        # threads that must not be duplicated into children.
        pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        for path, result in _hash_all(jobs, pool):
            if isinstance(result, ImageHashes):
                record = ScanRecord(path, verdict=engine.check_hashes(result))
            elif isinstance(result, VideoHashes):
                checked = check_video(engine, result)
                record = ScanRecord(path, verdict=checked.verdict, video=checked)
            else:
                record = ScanRecord(path, error_kind=result[0], error=result[1])
            summary.add(record)
            if on_record is not None:
                on_record(record)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return summary
