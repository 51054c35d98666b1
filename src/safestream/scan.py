"""Batch scan of files and folders: hash in parallel worker processes, match here.

Hashing (decode + PDQ) is the CPU cost, so it runs in a process pool over all
cores; matching is microseconds per image and stays in the parent, which
holds the only copy of the index and the only database connection.
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
from safestream.errors import InputError
from safestream.scan_worker import HashJobOptions, HashJobResult, hash_one
from safestream.signals.hashing import ImageHashes


@dataclass(frozen=True)
class ScanRecord:
    """The result for one file: a verdict, or an error that stopped it."""

    path: str
    verdict: Verdict | None = None
    error_kind: str | None = None
    error: str | None = None

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
        else:
            out["error"] = {"kind": self.error_kind, "message": self.error}
        return out


@dataclass
class ScanSummary:
    """Counts by outcome and error kind."""

    files: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)

    def add(self, record: ScanRecord) -> None:
        """Count one record."""
        self.files += 1
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
) -> ScanSummary:
    """Scan files and folders, calling ``on_record`` for each file as it finishes."""
    summary = ScanSummary()
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    if n_workers < 1:
        raise InputError("workers must be at least 1")
    o = engine.options
    job_options: HashJobOptions = (o.mode, o.min_quality, o.dihedral, o.max_pixels)
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
            else:
                record = ScanRecord(path, error_kind=result[0], error=result[1])
            summary.add(record)
            if on_record is not None:
                on_record(record)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return summary
