"""What a scan worker process runs: hash one file, never raise for a bad one.

Kept apart from :mod:`safestream.scan` so that a spawned worker imports only
the hashing code, not the engine, the index (numba) or the database layer.
Images and videos are told apart by content (:func:`hash_media_file`).
"""

from __future__ import annotations

from pathlib import Path

from safestream.errors import SafestreamError, error_kind
from safestream.signals.hashing import ImageHashes
from safestream.signals.video import VideoHashes, hash_media_file

#: (mode, min_quality, dihedral, max_pixels, video sample_fps) — plain values, cheap to send.
HashJobOptions = tuple[str, int, bool, int | None, float]
HashJobResult = tuple[str, ImageHashes | VideoHashes | tuple[str, str]]


def hash_one(job: tuple[str, HashJobOptions]) -> HashJobResult:
    """Hash one file; a bad file gives ``(path, (error_kind, message))``."""
    path, (mode, min_quality, dihedral, max_pixels, sample_fps) = job
    try:
        hashes = hash_media_file(
            Path(path),
            mode=mode,
            min_quality=min_quality,
            dihedral=dihedral,
            max_pixels=max_pixels,
            sample_fps=sample_fps,
            animated_frames=True,  # a known picture may be any frame of an animation
        )
        return path, hashes
    except SafestreamError as exc:
        return path, (error_kind(exc), str(exc))
    except Exception as exc:  # a decoder bug must not stop a scan of millions of files
        return path, ("internal_error", f"{type(exc).__name__}: {exc}")
