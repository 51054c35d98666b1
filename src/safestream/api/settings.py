"""Service settings, from the environment (``SAFESTREAM_*``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from safestream.errors import ConfigError


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class ServiceSettings:
    """How the service runs."""

    #: Largest request body accepted (uploads, imports), in bytes.
    max_upload_bytes: int = 50 * 1024 * 1024
    #: How often each process follows the bank change log, in seconds.
    refresh_interval_s: float = 0.5
    #: Most hashes in one lookup request.
    max_lookup_hashes: int = 1000
    #: Check records older than this are purged by ``safestream checks purge``.
    check_retention_days: int = 90
    #: Pixel limit against decompression bombs (None: Pillow's default).
    max_pixels: int | None = None
    #: ``exact`` or ``fast`` decoding for uploads.
    hash_mode: str = "exact"
    #: Classifiers run on every checked image: bundled names (``opennsfw``,
    #: ``nudenet``) or ``card:/path/to/model-card.toml``. Empty: none.
    classifiers: tuple[str, ...] = ()
    #: Videos up to this many seconds are checked in the request; longer ones (or of
    #: unknown duration) are answered 202 with a ``video_check`` job.
    video_sync_max_s: float = 60.0
    #: Video frames (classifiers configured): a category is flagged when at least
    #: ``video_classify_min_flagged`` of ``video_classify_window`` consecutive sampled
    #: frames score at least ``video_score_threshold``; at most
    #: ``video_classify_max_frames`` frames are classified (thinned evenly beyond).
    video_classify_window: int = 5
    video_classify_min_flagged: int = 3
    video_score_threshold: float = 0.8
    video_classify_max_frames: int = 600
    #: Live sources API callers may monitor: ``scheme://host[:port][/path]`` prefixes
    #: (``SAFESTREAM_LIVE_ALLOWED_SOURCES``, comma-separated). Empty: no URL allowed.
    live_allowed_sources: tuple[str, ...] = ()
    #: Local files under this directory may be monitored (played at real time). None: none.
    live_file_root: str | None = None
    #: Worker threads shared by all monitored streams (None: the usable cores).
    live_workers: int | None = None
    #: Most streams monitored at once by one process.
    live_max_streams: int = 64
    #: Which of a source's video streams are sampled (``all`` or ``preferred``), and
    #: how many one source may carry (see ``safestream.live.ingest.SourceSampler``).
    live_video_streams: str = "all"
    live_max_video_streams: int = 8
    #: FFmpeg hardware device type live streams are decoded on (``"cuda"``), or None.
    live_hwaccel: str | None = None

    @classmethod
    def from_env(cls) -> ServiceSettings:
        """Settings from ``SAFESTREAM_*`` variables, defaults for the rest."""
        max_pixels = _int("SAFESTREAM_MAX_PIXELS", 0, 0)
        video_streams = os.environ.get("SAFESTREAM_LIVE_VIDEO_STREAMS", "").strip() or "all"
        if video_streams not in ("all", "preferred"):
            raise ConfigError(
                f"SAFESTREAM_LIVE_VIDEO_STREAMS must be all or preferred, got {video_streams!r}"
            )
        max_video_streams = _int("SAFESTREAM_LIVE_MAX_VIDEO_STREAMS", cls.live_max_video_streams, 1)
        if max_video_streams > 64:
            raise ConfigError(
                f"SAFESTREAM_LIVE_MAX_VIDEO_STREAMS must be at most 64, got {max_video_streams}"
            )
        mode = os.environ.get("SAFESTREAM_HASH_MODE", "exact")
        if mode not in ("exact", "fast"):
            raise ConfigError(f"SAFESTREAM_HASH_MODE must be exact or fast, got {mode!r}")
        window = _int("SAFESTREAM_VIDEO_CLASSIFY_WINDOW", cls.video_classify_window, 1)
        min_flagged = _int(
            "SAFESTREAM_VIDEO_CLASSIFY_MIN_FLAGGED", cls.video_classify_min_flagged, 1
        )
        if min_flagged > window:
            raise ConfigError(
                f"SAFESTREAM_VIDEO_CLASSIFY_MIN_FLAGGED ({min_flagged}) must be at most "
                f"SAFESTREAM_VIDEO_CLASSIFY_WINDOW ({window})"
            )
        threshold = _float("SAFESTREAM_VIDEO_SCORE_THRESHOLD", cls.video_score_threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(
                f"SAFESTREAM_VIDEO_SCORE_THRESHOLD must be in [0, 1], got {threshold}"
            )
        return cls(
            max_upload_bytes=_int("SAFESTREAM_MAX_UPLOAD_BYTES", cls.max_upload_bytes, 1),
            refresh_interval_s=_float("SAFESTREAM_REFRESH_INTERVAL_S", cls.refresh_interval_s),
            max_lookup_hashes=_int("SAFESTREAM_MAX_LOOKUP_HASHES", cls.max_lookup_hashes, 1),
            check_retention_days=_int(
                "SAFESTREAM_CHECK_RETENTION_DAYS", cls.check_retention_days, 1
            ),
            max_pixels=max_pixels or None,
            video_sync_max_s=_float("SAFESTREAM_VIDEO_SYNC_MAX_S", cls.video_sync_max_s),
            video_classify_window=window,
            video_classify_min_flagged=min_flagged,
            video_score_threshold=threshold,
            video_classify_max_frames=_int(
                "SAFESTREAM_VIDEO_CLASSIFY_MAX_FRAMES", cls.video_classify_max_frames, 1
            ),
            hash_mode=mode,
            classifiers=tuple(
                item.strip()
                for item in os.environ.get("SAFESTREAM_CLASSIFIERS", "").split(",")
                if item.strip()
            ),
            live_allowed_sources=tuple(
                item.strip()
                for item in os.environ.get("SAFESTREAM_LIVE_ALLOWED_SOURCES", "").split(",")
                if item.strip()
            ),
            live_file_root=os.environ.get("SAFESTREAM_LIVE_FILE_ROOT", "").strip() or None,
            live_workers=(
                _int("SAFESTREAM_LIVE_WORKERS", 1, 1)
                if os.environ.get("SAFESTREAM_LIVE_WORKERS", "").strip()
                else None
            ),
            live_max_streams=_int("SAFESTREAM_LIVE_MAX_STREAMS", cls.live_max_streams, 1),
            live_video_streams=video_streams,
            live_max_video_streams=max_video_streams,
            live_hwaccel=os.environ.get("SAFESTREAM_LIVE_HWACCEL", "").strip() or None,
        )
