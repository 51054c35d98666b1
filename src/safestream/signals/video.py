"""Video signals: file MD5/SHA-256 and per-frame PDQ sampled in time (vPDQ-compatible).

A video's perceptual signal is a list of :class:`FrameHash` — one PDQ hash per sampled
frame with its quality and timestamp — the same data Meta's vPDQ writes, one
``frame_number,quality,pdq_hex,timestamp_seconds`` line per frame
(:func:`write_vpdq` / :func:`read_vpdq`). Frames are hashed at full resolution by
default, which makes each hash bit-identical to vPDQ's (``pdqhash.compute`` on the
frame's RGB24); ``max_side`` trades that for speed on large frames.

Matching follows vPDQ: the share of the query's (unique, good-quality) frames that
match some frame of the other video, and the share of the other video's frames
covered; both at or above a threshold (vPDQ: 80 %) make a match. A short known clip
inside a long video matches on coverage alone (:func:`find_clip`), with the time range
where it appears.

PyAV is an optional dependency (``pip install 'safestream[video]'``); it is imported
when a video is decoded, never at import time of this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from safestream.errors import InputError, NotAnImageError, SignalValueError
from safestream.signals.image import turned
from safestream.signals.pdq import (
    DEFAULT_MIN_QUALITY,
    DEFAULT_PDQ_THRESHOLD,
    fast_pdq_from_pixels,
    pdq_from_rgb,
)

if TYPE_CHECKING:
    import av.container
    import av.video.frame

    from safestream.signals.hashing import ImageHashes

__all__ = [
    "DEFAULT_MATCH_PERCENT",
    "ClipMatch",
    "CorruptVideoError",
    "FrameHash",
    "NoFramesError",
    "NoVideoStreamError",
    "NotAVideoError",
    "VideoError",
    "VideoHashes",
    "VideoMatch",
    "VideoProbe",
    "VideoTooLargeError",
    "VideoTooLongError",
    "find_clip",
    "frame_rgb",
    "frame_rgb_stretched",
    "hash_media_file",
    "hash_video",
    "match_videos",
    "probe_or_none",
    "probe_video",
    "read_vpdq",
    "require_av",
    "sniff_video",
    "write_vpdq",
]

#: vPDQ's default for both the query-match and the compared-match share.
DEFAULT_MATCH_PERCENT = 80.0
#: Consecutive sampled frames at most this many bits apart are folded into the first.
DEFAULT_FOLD_BITS = 8
#: Frames larger than this (pixels) are refused before decoding: 8K is 33 Mpx.
DEFAULT_MAX_FRAME_PIXELS = 8192 * 8192
_CHUNK = 1 << 20


class VideoError(InputError):
    """A video could not be read or is not acceptable."""


class NotAVideoError(VideoError):
    """The bytes are not a container with a video stream that FFmpeg can read."""


class NoVideoStreamError(NotAVideoError):
    """The container is readable but holds no video stream (audio only, data)."""


class CorruptVideoError(VideoError):
    """The video is truncated or corrupt: decoding failed."""


class NoFramesError(VideoError):
    """The video has a video stream but no frame could be decoded from it."""


class VideoTooLargeError(VideoError):
    """The video's frames are larger than the configured pixel limit."""


class TooManyVideoStreamsError(VideoError):
    """The file holds more video streams than :data:`MAX_VIDEO_STREAMS`."""


class VideoTooLongError(VideoError):
    """Decoding passed the duration the caller allowed (e.g. a header that lied)."""


#: A frame whose luma thumbnail (9 x 16 block means) differs from the previous frame's
#: by at least this much on average (0-255) is a scene change: hashed as well as the
#: samples, so a single frame flashed between two samples is checked too. Camera
#: motion stays far below it (synthetic pans: under 3).
SCENE_CHANGE_DIFF = 12.0
#: At most this many scene-change frames per second of video are hashed (plus one).
MAX_SCENE_FRAMES_PER_S = 2.0
#: The most video streams (tracks) one file may hold: each is hashed.
MAX_VIDEO_STREAMS = 8
#: With a duration limit, a video may hold at most this many frames per second of it.
MAX_FRAME_RATE = 240
#: A forward timestamp jump longer than this (seconds) is taken as a discontinuity.
MAX_TIMESTAMP_JUMP_S = 60.0
#: Samples are taken at least every ``ceil(MAX_FRAMES_PER_SAMPLE_S * fps)`` frames,
#: whatever the timestamps say (90 at 1 sample/s: only content over 90 frames/s, or
#: timestamps that advance slower than real time, gets extra samples).
MAX_FRAMES_PER_SAMPLE_S = 90


def frames_per_sample_cap(sample_fps: float) -> int:
    """The most frames (packets) between two samples at ``sample_fps``."""
    return max(1, math.ceil(MAX_FRAMES_PER_SAMPLE_S / sample_fps))


class MediaClock:
    """A monotonic media clock from a stream's own timestamps.

    Timestamps come from the file or the publisher, so they can reset (concatenated
    segments, an encoder restart, an HLS discontinuity), freeze or jump, by accident or
    on purpose: a sampler that trusts them samples nothing after a reset until the new
    timestamps catch up with the old ones, which would blind it to what follows. Fed
    each timestamp in order (:meth:`update`), the clock keeps the media time of a
    normal step and re-anchors at a discontinuity (a step back, a repeated timestamp,
    a jump forward over :data:`MAX_TIMESTAMP_JUMP_S`): the time then goes on one
    frame step after the last one. ``offset`` is what to add to raw timestamps now.

    ``slack`` (seconds) lets timestamps go back that far without a discontinuity (PTS
    in decode order, reordered by B-frames); such a step does not move the clock.
    """

    __slots__ = ("_high_eff", "_high_raw", "discontinuities", "offset", "step")

    def __init__(self) -> None:
        self.offset = 0.0
        #: Frame step used at a discontinuity: the last normal step (within bounds).
        self.step = 1 / 30
        self.discontinuities = 0
        self._high_raw: float | None = None
        self._high_eff = 0.0

    def update(self, raw: float, *, slack: float = 0.0) -> float:
        """Take the next timestamp (seconds, the stream's own clock); its media time."""
        if self._high_raw is None:
            self._high_raw, self._high_eff = raw, raw + self.offset
            return self._high_eff
        d = raw - self._high_raw
        if not (-slack < d <= MAX_TIMESTAMP_JUMP_S) or (d == 0 and not slack):
            self.offset = self._high_eff + self.step - raw
            self.discontinuities += 1
        elif d > 0:
            self.step = min(max(d, 1 / 240), 1.0)
        else:
            return raw + self.offset  # reordered within the slack
        self._high_raw, self._high_eff = raw, raw + self.offset
        return self._high_eff


def require_av() -> Any:
    """Import PyAV, or say which extra installs it."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise VideoError("video support needs PyAV: pip install 'safestream[video]'") from exc
    return av


@dataclass(frozen=True)
class FrameHash:
    """PDQ of one sampled frame: a line of a vPDQ file."""

    frame_number: int
    quality: int
    pdq: str
    timestamp_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "frame_number": self.frame_number,
            "quality": self.quality,
            "pdq": self.pdq,
            "timestamp_s": round(self.timestamp_s, 3),
        }


@dataclass(frozen=True)
class VideoHashes:
    """Signals of one video file."""

    md5: str
    sha256: str
    frames: tuple[FrameHash, ...]
    width: int
    height: int
    duration_s: float
    frames_decoded: int
    frames_sampled: int
    sample_fps: float | None
    #: SHA-1 of the file (as images get it); "" when built by older code.
    sha1: str = ""
    #: Times the frame timestamps went back, repeated or jumped (see :class:`MediaClock`).
    timestamp_discontinuities: int = 0
    #: The file's stream these frames come from: the one players and transcoders pick.
    stream_index: int = 0
    #: The file's other video streams, hashed the same way (a decoy first track must not
    #: hide the one a player shows), and any stream's frames an edit list hides.
    other_streams: tuple[VideoHashes, ...] = ()
    #: Packets of this stream that the file's edit list (MP4/MOV) hides from players.
    packets_hidden: int = 0
    #: These frames were read ignoring the edit list: all the stream holds, shown or not.
    edit_list_ignored: bool = False
    #: Scene changes between samples (a frame unlike the one before it), hashed too:
    #: checked against image banks, kept apart from ``frames`` (vPDQ's sampling).
    scene_frames: tuple[FrameHash, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "md5": self.md5,
            "sha1": self.sha1,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "duration_s": round(self.duration_s, 3),
            "frames_decoded": self.frames_decoded,
            "frames_sampled": self.frames_sampled,
            "sample_fps": self.sample_fps,
            "timestamp_discontinuities": self.timestamp_discontinuities,
            "stream_index": self.stream_index,
            "packets_hidden": self.packets_hidden,
            "edit_list_ignored": self.edit_list_ignored,
            "frames": [f.to_dict() for f in self.frames],
            "scene_frames": [f.to_dict() for f in self.scene_frames],
            "other_streams": [o.to_dict() for o in self.other_streams],
        }


# ---------------------------------------------------------------------------
# Hashing


def file_digests(source: Path | IO[bytes]) -> tuple[str, str]:
    """MD5 and SHA-256 hex of a file (path or binary file object, read from its start)."""
    md5, _, sha256 = all_digests(source)
    return md5, sha256


def all_digests(source: Path | IO[bytes]) -> tuple[str, str, str]:
    """MD5, SHA-1 and SHA-256 hex of a file (path or binary file object, from its start)."""
    digests = (
        hashlib.md5(usedforsecurity=False),
        hashlib.sha1(usedforsecurity=False),
        hashlib.sha256(),
    )
    if isinstance(source, Path):
        with source.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                for d in digests:
                    d.update(chunk)
    else:
        source.seek(0)
        while chunk := source.read(_CHUNK):
            for d in digests:
                d.update(chunk)
        source.seek(0)
    return digests[0].hexdigest(), digests[1].hexdigest(), digests[2].hexdigest()


# ---------------------------------------------------------------------------
# Detection by content

#: ISO-BMFF major brands of still images (HEIF/AVIF/JPEG 2000): images, not videos.
_IMAGE_BRANDS = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
    | {b"mif2", b"jp2 ", b"jpx ", b"jpm ", b"crx "}
)
#: Box types that start QuickTime files written without an ``ftyp`` box.
_QT_BOXES = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
#: How many leading bytes :func:`sniff_video` needs.
SNIFF_BYTES = 1024


def sniff_video(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts like a video container.

    Magic bytes of MP4/MOV/3GP (ISO-BMFF with a non-image brand), Matroska/WebM, AVI,
    FLV, MPEG-TS (sync bytes every 188), MPEG-PS, ASF/WMV and Ogg. Content decides,
    never the file name. Unknown formats fall back to :func:`probe_video`.
    """
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12] not in _IMAGE_BRANDS
    if len(head) >= 8 and head[4:8] in _QT_BOXES and int.from_bytes(head[:4], "big") >= 8:
        return True
    if head.startswith((b"\x1a\x45\xdf\xa3", b"FLV\x01", b"\x00\x00\x01\xba", b"OggS")):
        return True
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):  # ASF / WMV
        return True
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return True
    # MPEG-TS (188-byte packets) or M2TS (192, after a 4-byte time code): a sync
    # byte at the start of three consecutive packets.
    return any(
        len(head) > start + 2 * size and all(head[start + k * size] == 0x47 for k in range(3))
        for start, size in ((0, 188), (4, 192))
    )


@dataclass(frozen=True)
class VideoProbe:
    """What a container's header says, without decoding a frame."""

    has_video: bool
    width: int
    height: int
    #: Seconds, from the container or stream header; None when it does not say.
    duration_s: float | None
    format_name: str
    #: Video streams in the file (each is decoded when the file is hashed).
    video_streams: int = 1


def probe_video(source: Path | IO[bytes] | bytes, *, name: str | None = None) -> VideoProbe:
    """Open a container and read its header (streams, size, duration); decodes nothing.

    Raises :class:`NotAVideoError` (or :class:`CorruptVideoError` when the bytes start
    like a video container) when FFmpeg cannot open it.
    """
    av = require_av()
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(bytes(source))
    what = name or (str(source) if isinstance(source, Path) else "video")
    container = _open(av, source, what)
    try:
        if not container.streams.video:
            return VideoProbe(False, 0, 0, _container_duration(container), container.format.name)
        # Every video stream is hashed: the largest frames and the longest stream count.
        duration = _container_duration(container)
        for s in container.streams.video:
            if s.duration is not None and s.time_base is not None:
                duration = max(duration or 0.0, float(s.duration * s.time_base))
        stream = max(
            container.streams.video,
            key=lambda s: int(s.codec_context.width) * int(s.codec_context.height),
        )
        return VideoProbe(
            True,
            int(stream.codec_context.width),
            int(stream.codec_context.height),
            duration,
            container.format.name,
            len(container.streams.video),
        )
    finally:
        container.close()


#: FFmpeg demuxers that read text or still images as "video": not videos to us.
_NOT_VIDEO_FORMATS = frozenset({"tty", "image2", "image2pipe", "lavfi", "ffmetadata"})


def probe_or_none(source: IO[bytes] | bytes, name: str) -> VideoProbe | None:
    """The probe of a container with a video stream, or None (not a video to us)."""
    try:
        probe = probe_video(source, name=name)
    except VideoError:
        return None
    if not probe.has_video or probe.format_name in _NOT_VIDEO_FORMATS:
        return None
    if probe.format_name.endswith("_pipe"):  # png_pipe, jpeg_pipe...: still images
        return None
    return probe


def _container_duration(container: av.container.InputContainer) -> float | None:
    if container.duration is None or container.duration <= 0:
        return None
    return float(container.duration) / 1_000_000  # AV_TIME_BASE


#: (transpose, flip rows, flip columns): from the decoded picture to the displayed one.
Orientation = tuple[bool, bool, bool]


def display_orientation(frame: av.video.frame.VideoFrame) -> Orientation | None:
    """How a frame is turned for display (its display matrix), or None when upright.

    Phones store portrait video as landscape pictures plus a display matrix, and a
    crafted file can store known material turned or mirrored with a matrix that
    turns it back: players (and the ``ffmpeg`` program, hence vPDQ) show and hash the
    displayed picture, so samples are hashed that way too. Rotations by multiples of
    90 degrees and mirroring are applied; other matrices are left as decoded. The
    matrix maps a decoded pixel (p, q) to (a p + c q, b p + d q) (FFmpeg's
    ``libavutil/display.h``).
    """
    try:
        side = frame.side_data.get("DISPLAYMATRIX")
    except (KeyError, ValueError, TypeError):
        return None
    if side is None:
        return None
    raw = bytes(memoryview(side))  # type: ignore[arg-type]
    if len(raw) < 36:
        return None
    m = np.frombuffer(raw[:36], dtype=np.int32)
    a, b, c, d = (int(np.sign(v)) for v in (m[0], m[1], m[3], m[4]))
    if a == 0 and d == 0 and b and c:
        return (True, b < 0, c < 0)
    if b == 0 and c == 0 and a and d and (a < 0 or d < 0):
        return (False, d < 0, a < 0)
    return None


def displayed(pixels: npt.NDArray[Any], orientation: Orientation | None) -> npt.NDArray[Any]:
    """``pixels`` (rows first) turned as the frame is displayed, contiguous."""
    if orientation is None:
        return pixels
    return np.ascontiguousarray(turned(pixels, orientation))


def frame_rgb(
    frame: av.video.frame.VideoFrame, max_side: int | None = None
) -> npt.NDArray[np.uint8]:
    """RGB24 pixels of a decoded frame as displayed (:func:`display_orientation`),
    scaled down (area) so its longer side is <= max_side."""
    width, height = int(frame.width), int(frame.height)
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        rgb = scaled_pixels(frame, "rgb24", width, height)
    else:
        rgb = scaled_pixels(frame, "rgb24")
    return np.ascontiguousarray(displayed(rgb, display_orientation(frame)), dtype=np.uint8)


def frame_rgb_stretched(
    frame: av.video.frame.VideoFrame, width: int, height: int
) -> npt.NDArray[np.uint8]:
    """RGB24 pixels of a decoded frame as displayed, stretched (bilinear) to exactly
    ``width`` x ``height`` whatever its aspect ratio.

    This is the first step of classifiers that stretch their input
    (:attr:`safestream.classify.base.Classifier.stretch_size`), done in one resample
    from the decoded picture: :func:`frame_rgb` to 512 px and the classifier's own
    stretch of that were two, and took 1.6-1.8x as long from frame to tensor
    (``bench/live.py``, "Classifier input"). Bilinear, as the classifiers' own stretch
    (PIL's): opennsfw's scores stay within 0.02 of those of the full-size frame on
    scikit-image's photos (through 512 px: 0.04 at 720p, 0.07 at their own sizes; area
    instead of bilinear: 0.11).
    """
    if width < 1 or height < 1:
        raise ValueError(f"a stretch size must be positive, got {width}x{height}")
    orientation = display_orientation(frame)
    # A frame displayed turned by 90 degrees is scaled to the transposed size first.
    w, h = (height, width) if orientation is not None and orientation[0] else (width, height)
    rgb = scaled_pixels(frame, "rgb24", w, h, "BILINEAR")
    return np.ascontiguousarray(displayed(rgb, orientation), dtype=np.uint8)


_REFORMATTERS = threading.local()


def scaled_pixels(
    frame: av.video.frame.VideoFrame,
    fmt: str,
    width: int | None = None,
    height: int | None = None,
    interpolation: str = "AREA",
) -> npt.NDArray[np.uint8]:
    """``frame.to_ndarray(format=fmt, width=..., height=..., interpolation=...)`` through
    this thread's scaler for ``fmt`` and ``interpolation``, on one thread.

    PyAV's ``to_ndarray`` builds a new swscale context for every frame, and FFmpeg then
    starts (and ends) one slice thread per core for it: two thread creations and a filter
    set-up per live sample. A context kept per thread, format and interpolation is set up
    again only when the frame's size or format changes, and scales on the calling thread.
    """
    from av.video.reformatter import VideoReformatter

    cache: dict[tuple[str, str], Any] | None = getattr(_REFORMATTERS, "by_format", None)
    if cache is None:
        cache = _REFORMATTERS.by_format = {}
    reformatter = cache.get((fmt, interpolation))
    if reformatter is None:
        reformatter = cache[fmt, interpolation] = VideoReformatter()
    out = reformatter.reformat(
        frame,
        width=width,
        height=height,
        format=fmt,
        interpolation=interpolation if width is not None else None,
        threads=1,
    )
    pixels: npt.NDArray[np.uint8] = np.asarray(out.to_ndarray(), dtype=np.uint8)
    return pixels


#: A frame's luma is reduced by whole blocks to about this many pixels on its shorter side
#: before :func:`frame_pdq` hashes it.
LUMA_SHORT_SIDE = 180


def frame_pdq(frame: av.video.frame.VideoFrame) -> tuple[str, int]:
    """PDQ ``(hex, quality)`` of a decoded frame at its full size, without RGB.

    The luma is scaled (area) down by a whole block factor (4 for 720p, 6 for 1080p) and
    :func:`~safestream.signals.pdq.fast_pdq_from_pixels` folds PDQ's full-size blur onto
    those block means: it approximates ``pdqhash`` on the full-size RGB frame (the
    hash a bank holds for the picture) at a quarter to a third of the cost of scaling to
    512-px RGB and hashing that. Measured on 14 benign photos shown as 720p H.264
    (``bench/live.py``, "Hash path"): Hamming distance to each photo's own hash median 6
    / max 26 bits, against 10 / 32 for 512-px RGB + ``pdqhash`` and 6 / 24 for
    ``pdqhash`` on the full-size RGB frame.
    """
    width, height = int(frame.width), int(frame.height)
    block = max(1, round(min(width, height) / LUMA_SHORT_SIDE))
    cols, rows = max(1, round(width / block)), max(1, round(height / block))
    luma = scaled_pixels(frame, "gray", cols, rows)
    orientation = display_orientation(frame)
    if orientation is not None and orientation[0]:
        rows, cols = cols, rows
    pdq, quality, _ = fast_pdq_from_pixels(
        np.ascontiguousarray(displayed(luma, orientation)),
        full_shape=(rows * block, cols * block),
        block=block,
    )
    return pdq, quality


def open_video(source: Path | IO[bytes], what: str) -> av.container.InputContainer:
    """Open a video for decoding; failures raise :class:`NotAVideoError` or, for bytes
    that start like a video container, :class:`CorruptVideoError`."""
    return _open(require_av(), source, what)


def _open(
    lib: Any, source: Path | IO[bytes], what: str, options: dict[str, str] | None = None
) -> av.container.InputContainer:
    try:
        container: av.container.InputContainer = lib.open(
            str(source) if isinstance(source, Path) else source, mode="r", options=options or {}
        )
    except FileNotFoundError as exc:
        raise VideoError(f"{what}: no such file") from exc
    except (lib.error.FFmpegError, ValueError, OSError) as exc:
        if _starts_like_video(source):
            raise CorruptVideoError(
                f"{what}: the bytes start like a video container but FFmpeg cannot read it "
                f"({type(exc).__name__}: {exc}); the file is truncated or corrupt: "
                "send it again or obtain an intact copy"
            ) from exc
        raise NotAVideoError(
            f"{what}: not a video FFmpeg can read ({type(exc).__name__}: {exc}); "
            "check the file is a complete video (mp4, mkv, webm, ts, ...)"
        ) from exc
    return container


def _starts_like_video(source: Path | IO[bytes]) -> bool:
    try:
        if isinstance(source, Path):
            with source.open("rb") as fh:
                head = fh.read(SNIFF_BYTES)
        else:
            source.seek(0)
            head = source.read(SNIFF_BYTES)
            source.seek(0)
    except OSError:
        return False
    return sniff_video(head)


def hash_video(
    source: Path | IO[bytes] | bytes,
    *,
    sample_fps: float | None = 1.0,
    fold_bits: int | None = DEFAULT_FOLD_BITS,
    max_side: int | None = None,
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    name: str | None = None,
    max_duration_s: float | None = None,
    on_sample: Callable[[int, int, float, av.video.frame.VideoFrame], None] | None = None,
    on_extra: ExtraFrameCallback | None = None,
) -> VideoHashes:
    """Hash a video: file digests and PDQ of frames sampled ``sample_fps`` times a second.

    ``on_sample(index, frame number, seconds, frame)`` is called with every sampled
    frame (before folding), so that other work (classifiers) shares the decode.
    ``on_extra(stream index, frame number, seconds, frame, scene change)`` is called
    with the frames hashed besides those: scene changes between samples, and every
    sample and scene change of the other video streams (and of a pass with the edit
    list ignored).

    ``sample_fps=None`` hashes every frame (as vPDQ with one second per hash unset).
    Consecutive samples within ``fold_bits`` of the last kept one are folded into it
    (``None``: keep every sample). ``max_side`` scales frames down before hashing (faster
    on HD, hashes drift a few bits from vPDQ's). Bad input raises :class:`VideoError`;
    a frame later than ``max_duration_s`` (or more than :data:`MAX_FRAME_RATE` frames
    per second of it) raises :class:`VideoTooLongError`.

    Frame times are the video's own timestamps on a clock that never goes back
    (:class:`MediaClock`): where they reset, repeat or jump (concatenated segments, a
    crafted file), sampling goes on from where it was, and the result counts
    ``timestamp_discontinuities``. At most ``ceil(90 / sample_fps)`` frames pass
    between two samples, whatever the timestamps say.
    """
    av = require_av()
    if sample_fps is not None and not sample_fps > 0:
        raise InputError(f"sample_fps must be > 0 (or None for every frame), got {sample_fps}")
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(bytes(source))
    what = name or (str(source) if isinstance(source, Path) else "video")
    if isinstance(source, Path):
        if not source.is_file():
            raise VideoError(f"{what}: no such file")
        if source.stat().st_size == 0:
            raise NotAVideoError(f"{what}: the file is empty")
    md5, sha1, sha256 = all_digests(source)
    container = _open(av, source, what)
    try:
        order = video_stream_order(container, what)
        hashes = _hash_container(
            container,
            md5,
            sha256,
            what,
            sample_fps,
            fold_bits,
            max_side,
            max_frame_pixels,
            max_duration_s,
            on_sample,
            stream_index=order[0],
            on_scene=None if on_extra is None else partial(on_extra, order[0]),
        )
    finally:
        container.close()

    def another_pass(index: int, ignore_edit_list: bool) -> VideoHashes | None:
        # One more pass per other stream, or per stream whose edit list hides packets
        # (rare): each decodes only its own stream's packets.
        if not isinstance(source, Path):
            source.seek(0)
        container = _open(av, source, what, {"ignore_editlist": "1"} if ignore_edit_list else None)
        label = f"video stream {index}" + (", edit list ignored" if ignore_edit_list else "")
        try:
            other = _hash_container(
                container,
                md5,
                sha256,
                f"{what} ({label})",
                sample_fps,
                fold_bits,
                max_side,
                max_frame_pixels,
                max_duration_s,
                None if on_extra is None else partial(_regular_extra, on_extra, index),
                stream_index=index,
                on_scene=None if on_extra is None else partial(on_extra, index),
            )
        except NoFramesError:
            return None  # an empty extra track shows nothing
        finally:
            container.close()
        return dataclasses.replace(other, sha1=sha1, edit_list_ignored=ignore_edit_list)

    others: list[VideoHashes] = []
    if hashes.packets_hidden:
        # Frames an edit list hides are in the file for anyone who ignores it.
        hidden = another_pass(order[0], True)
        others += [hidden] if hidden is not None else []
    for index in order[1:]:
        other = another_pass(index, False)
        if other is not None:
            others.append(other)
            if other.packets_hidden:
                hidden = another_pass(index, True)
                others += [hidden] if hidden is not None else []
    return dataclasses.replace(hashes, sha1=sha1, other_streams=tuple(others))


def video_stream_order(container: av.container.InputContainer, what: str) -> list[int]:
    """The indexes of a file's video streams, the one players pick first.

    That is :func:`preferred_video_stream` (the default-flagged one, else the largest),
    as the ``ffmpeg`` program and most transcoders choose it; not simply the first,
    which a crafted file can make a decoy. More than :data:`MAX_VIDEO_STREAMS` is
    refused.
    """
    streams = list(container.streams.video)
    if not streams:
        raise NoVideoStreamError(
            f"{what}: the file has no video stream (audio or data only); send a video"
        )
    if len(streams) > MAX_VIDEO_STREAMS:
        raise TooManyVideoStreamsError(
            f"{what}: the file has {len(streams)} video streams; at most "
            f"{MAX_VIDEO_STREAMS} are checked"
        )
    first = preferred_video_stream(streams).index
    return [first, *(s.index for s in streams if s.index != first)]


def preferred_video_stream(streams: Sequence[av.video.stream.VideoStream]) -> Any:
    """The video stream the ``ffmpeg`` program maps by default (and players show).

    As its automatic mapping scores them: the default-flagged stream first, then the
    largest picture, then the first; attached pictures (cover art) only when there is
    nothing else. (``streams.best()``, FFmpeg's library choice, goes by packets probed
    and bitrate instead and can pick a small decoy first programme of an MPEG-TS.)
    """

    def score(s: Any) -> tuple[bool, int, int]:
        disposition = int(s.disposition)
        attached = bool(disposition & int(require_av().stream.Disposition.attached_pic))
        default = bool(disposition & int(require_av().stream.Disposition.default))
        cc = s.codec_context
        area = int(cc.width or 0) * int(cc.height or 0)
        return (not attached, area + 5_000_000 * default, -int(s.index))

    return max(streams, key=score)


class SampledFrames:
    """The frames of one video stream sampled ``sample_fps`` times a second.

    The stream is ``stream_index`` or, by default, the one players pick
    (:func:`video_stream_order`).

    Iterating decodes and yields ``(frame number, seconds since the first frame on
    the :class:`MediaClock`, frame)`` for each sampled frame (every frame when
    ``sample_fps`` is None; at least one every ``frame_cap`` frames), with the
    limits and errors :func:`hash_video` applies: no video stream, frames over
    ``max_frame_pixels``, a frame later than ``max_duration_s``, undecodable data, no
    decodable frame. Counters (``decoded``, ``sampled``, ``last_time_s``) are kept as it
    goes. Shared by hashing and classification, so both see the same frames.
    """

    def __init__(
        self,
        container: av.container.InputContainer,
        what: str,
        *,
        sample_fps: float | None,
        max_frame_pixels: int,
        max_duration_s: float | None = None,
        stream_index: int | None = None,
        scene_changes: bool = False,
    ) -> None:
        if sample_fps is not None and not sample_fps > 0:
            raise InputError(f"sample_fps must be > 0 (or None for every frame), got {sample_fps}")
        order = video_stream_order(container, what)
        index = order[0] if stream_index is None else stream_index
        if index not in order:
            raise InputError(f"{what}: no video stream {index}")
        self.stream = next(s for s in container.streams.video if s.index == index)
        cc = self.stream.codec_context
        self.width, self.height = int(cc.width), int(cc.height)
        if self.width * self.height > max_frame_pixels:
            raise VideoTooLargeError(
                f"{what}: frames of {self.width}x{self.height} exceed the limit of "
                f"{max_frame_pixels} pixels"
            )
        self.stream.thread_type = "AUTO"
        self.container = container
        self.what = what
        self.interval = None if sample_fps is None else 1.0 / sample_fps
        self.max_frame_pixels = max_frame_pixels
        self.max_duration_s = max_duration_s
        self.decoded = self.sampled = 0
        self.last_time_s = 0.0
        #: Frame times as a monotonic clock (its ``discontinuities`` are counted).
        self.clock = MediaClock()
        #: Packets the container's edit list hides (MP4/MOV): never shown by players.
        self.hidden_packets = 0
        #: Also yield scene changes between samples; their frame numbers are kept here.
        self.scene_changes = scene_changes and sample_fps is not None
        self.scene_numbers: set[int] = set()
        self.frame_cap = None if sample_fps is None else frames_per_sample_cap(sample_fps)

    @property
    def duration_s(self) -> float:
        """The stream's duration: its header's, or the last frame's time if later."""
        duration = self.last_time_s
        if self.stream.duration is not None and self.stream.time_base is not None:
            duration = max(duration, float(self.stream.duration * self.stream.time_base))
        return duration

    def _decoded(self, stream: Any) -> Iterator[av.video.frame.VideoFrame]:
        for packet in self.container.demux(stream):
            if packet.size and packet.is_discard:
                self.hidden_packets += 1  # an edit list hides it: FFmpeg drops its frame
            yield from packet.decode()

    def __iter__(self) -> Iterator[tuple[int, float, av.video.frame.VideoFrame]]:
        av = require_av()
        what, stream = self.what, self.stream
        next_due = 0.0
        first_time: float | None = None
        since = 0  # frames since the last sample
        previous: npt.NDArray[np.float32] | None = None
        try:
            for frame in self._decoded(stream):
                number = self.decoded
                self.decoded += 1
                if frame.width * frame.height > self.max_frame_pixels:
                    raise VideoTooLargeError(
                        f"{what}: a frame of {frame.width}x{frame.height} exceeds the limit "
                        f"of {self.max_frame_pixels} pixels"
                    )
                # On a clock that never goes back: timestamps that reset, repeat or jump
                # (concatenated segments, a crafted file) must not hide what follows.
                t_abs = self.clock.update(
                    float(frame.time)
                    if frame.time is not None
                    else number / float(stream.average_rate or 25)
                )
                # Seconds from the first frame: MPEG-TS clocks start anywhere (often 1.4 s).
                if first_time is None:
                    first_time = t_abs
                t = t_abs - first_time
                if self.max_duration_s is not None and t > self.max_duration_s:
                    raise VideoTooLongError(
                        f"{what}: the video runs past {self.max_duration_s:g} s "
                        f"(a frame at {t:.3f} s)"
                    )
                if (
                    self.max_duration_s is not None
                    and self.decoded > self.max_duration_s * MAX_FRAME_RATE + 1
                ):
                    # Timestamps that crawl would keep the time under the limit.
                    raise VideoTooLongError(
                        f"{what}: the video has more than {self.max_duration_s:g} s of frames "
                        f"at {MAX_FRAME_RATE} frames/s ({self.decoded} frames by {t:.3f} s)"
                    )
                self.last_time_s = max(self.last_time_s, t)
                changed = False
                if self.scene_changes:
                    thumb = _luma_thumbnail(frame)
                    changed = (
                        previous is not None
                        and thumb is not None
                        and previous.shape == thumb.shape
                        and float(np.abs(thumb - previous).mean()) >= SCENE_CHANGE_DIFF
                    )
                    previous = thumb
                if self.interval is not None and self.frame_cap is not None:
                    since += 1
                    # Tolerance for timestamps rounded to the time base. Timestamps that
                    # crawl cannot stretch the interval past ``frame_cap`` frames.
                    if t + 1e-6 < next_due and since < self.frame_cap:
                        if changed and len(self.scene_numbers) < MAX_SCENE_FRAMES_PER_S * (t + 1):
                            self.scene_numbers.add(number)
                            yield number, t, frame
                        continue
                    next_due = (int((t + 1e-6) / self.interval) + 1) * self.interval
                    since = 0
                self.sampled += 1
                yield number, t, frame
        except VideoError:
            raise
        except (av.error.FFmpegError, ValueError) as exc:
            raise CorruptVideoError(
                f"{what}: decoding failed after {self.decoded} frames "
                f"({type(exc).__name__}: {exc}); the file is truncated or corrupt"
            ) from exc
        if self.decoded == 0:
            raise NoFramesError(f"{what}: the video stream has no decodable frame")


def _luma_thumbnail(frame: av.video.frame.VideoFrame) -> npt.NDArray[np.float32] | None:
    """9 x 16 block means of a frame's luma, from ~36 x 64 of its pixels (~20 us);
    None for frames without an 8-bit luma plane first (RGB, 10-bit)."""
    if frame.format.name not in _YUV8 or frame.height < 72 or frame.width < 128:
        return None
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    luma = rows[: frame.height, : frame.width]
    step = max(1, min(frame.height // 36, frame.width // 64))  # ~36 x 64 pixels read
    sub = luma[::step, ::step].astype(np.float32)
    bh, bw = sub.shape[0] // 9, sub.shape[1] // 16
    blocks: npt.NDArray[np.float32] = (
        sub[: bh * 9, : bw * 16].reshape(9, bh, 16, bw).mean(axis=(1, 3), dtype=np.float32)
    )
    return blocks


#: Pixel formats whose first plane is 8-bit luma.
_YUV8 = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)


def frames_by_time(path: Path) -> Iterator[tuple[float, av.video.frame.VideoFrame]]:
    """Every frame of a video's first stream, fully decoded, with its seconds since the
    first frame rounded to 0.1 ms: the reference that tests and benchmarks compare
    samples with (raw timestamps, no :class:`MediaClock`)."""
    lib = require_av()
    with lib.open(str(path)) as container:
        stream = container.streams.video[0]
        base = float(stream.time_base)
        first: float | None = None
        for frame in container.decode(stream):
            t = frame.pts * base
            first = t if first is None else first
            yield round(t - first, 4), frame


#: ``on_extra(stream index, frame number, seconds, frame, scene change)``.
ExtraFrameCallback = Callable[[int, int, float, "av.video.frame.VideoFrame", bool], None]


def _regular_extra(
    on_extra: ExtraFrameCallback, stream: int, _index: int, number: int, t: float, frame: Any
) -> None:
    """A regular sample of a stream other than the one players pick, as an extra frame."""
    on_extra(stream, number, t, frame, False)


def _hash_container(
    container: av.container.InputContainer,
    md5: str,
    sha256: str,
    what: str,
    sample_fps: float | None,
    fold_bits: int | None,
    max_side: int | None,
    max_frame_pixels: int,
    max_duration_s: float | None = None,
    on_sample: Callable[[int, int, float, av.video.frame.VideoFrame], None] | None = None,
    stream_index: int | None = None,
    on_scene: Callable[[int, float, av.video.frame.VideoFrame, bool], None] | None = None,
) -> VideoHashes:
    sampled = SampledFrames(
        container,
        what,
        sample_fps=sample_fps,
        max_frame_pixels=max_frame_pixels,
        max_duration_s=max_duration_s,
        stream_index=stream_index,
        scene_changes=True,
    )
    frames: list[FrameHash] = []
    scene: list[FrameHash] = []
    index = 0
    for number, t, frame in sampled:
        if number in sampled.scene_numbers:
            pdq, quality = pdq_from_rgb(frame_rgb(frame, max_side))
            scene.append(FrameHash(number, quality, pdq, t))
            if on_scene is not None:
                on_scene(number, t, frame, True)
            continue
        if on_sample is not None:
            on_sample(index, number, t, frame)
        index += 1
        pdq, quality = pdq_from_rgb(frame_rgb(frame, max_side))
        fh = FrameHash(number, quality, pdq, t)
        if fold_bits is not None and frames and _distance(frames[-1].pdq, pdq) <= fold_bits:
            continue
        frames.append(fh)
    return VideoHashes(
        md5=md5,
        sha256=sha256,
        frames=tuple(frames),
        width=sampled.width,
        height=sampled.height,
        duration_s=sampled.duration_s,
        frames_decoded=sampled.decoded,
        frames_sampled=sampled.sampled,
        sample_fps=sample_fps,
        timestamp_discontinuities=sampled.clock.discontinuities,
        stream_index=sampled.stream.index,
        packets_hidden=sampled.hidden_packets,
        scene_frames=tuple(scene),
    )


def hash_media_file(
    path: Path,
    *,
    mode: str = "exact",
    min_quality: int = DEFAULT_MIN_QUALITY,
    dihedral: bool = False,
    all_frames: bool = False,
    max_pixels: int | None = None,
    sample_fps: float | None = 1.0,
    fold_bits: int | None = DEFAULT_FOLD_BITS,
    max_side: int | None = None,
    animated_frames: bool = False,
) -> ImageHashes | VideoHashes:
    """Hash an image or a video file, told apart by content (never by file name).

    Magic bytes of a video container (:func:`sniff_video`) send it to
    :func:`hash_video`; anything else is hashed as an image, and bytes that are not
    an image are probed with FFmpeg once more (formats without a known signature).
    ``max_pixels`` bounds image pixels and, for videos, the pixels of each frame
    (default :data:`DEFAULT_MAX_FRAME_PIXELS`). Neither image nor video raises
    :class:`~safestream.errors.NotAnImageError` saying so.
    """
    from safestream.signals.hashing import hash_file

    head = b""
    # An unreadable path falls through to hash_file, which says precisely what is wrong.
    with contextlib.suppress(OSError), path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    video_kwargs: dict[str, Any] = {
        "sample_fps": sample_fps,
        "fold_bits": fold_bits,
        "max_side": max_side,
        "max_frame_pixels": max_pixels or DEFAULT_MAX_FRAME_PIXELS,
    }
    if sniff_video(head):
        return hash_video(path, **video_kwargs)
    try:
        return hash_file(
            path,
            mode=mode,
            min_quality=min_quality,
            dihedral=dihedral,
            all_frames=all_frames,
            max_pixels=max_pixels,
            animated_frames=animated_frames,
        )
    except NotAnImageError as exc:
        # Probed through a file object: FFmpeg would trust a path's extension (a text
        # file named .jpg "is" a one-frame MJPEG video to it).
        with path.open("rb") as fh:
            probe = probe_or_none(fh, str(path))
            if probe is not None:
                return hash_video(fh, name=str(path), **video_kwargs)
        raise NotAnImageError(
            f"{path}: neither an image nor a video we can read (detected by content, not "
            "by file name); send a JPEG, PNG, GIF, WebP, TIFF or BMP image, or an MP4, "
            "MOV, MKV, WebM, AVI or MPEG-TS video"
        ) from exc


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


# ---------------------------------------------------------------------------
# vPDQ text format


def write_vpdq(frames: Iterable[FrameHash]) -> str:
    """vPDQ text: ``frame_number,quality,pdq_hex,timestamp_seconds`` per line."""
    return "".join(f"{f.frame_number},{f.quality},{f.pdq},{f.timestamp_s:.3f}\n" for f in frames)


def read_vpdq(text: str, *, source: str = "vpdq") -> tuple[FrameHash, ...]:
    """Parse vPDQ text (blank lines and ``#`` comments skipped); bad lines raise."""
    out: list[FrameHash] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(",")
        if len(parts) != 4:
            raise SignalValueError(
                f"{source}:{number}: expected frame_number,quality,pdq_hex,timestamp_seconds"
            )
        try:
            frame_number, quality, timestamp = int(parts[0]), int(parts[1]), float(parts[3])
        except ValueError as exc:
            raise SignalValueError(f"{source}:{number}: bad number ({exc})") from exc
        pdq = parts[2].strip().lower()
        if len(pdq) != 64 or any(c not in "0123456789abcdef" for c in pdq):
            raise SignalValueError(f"{source}:{number}: the PDQ hash must be 64 hex characters")
        if frame_number < 0 or not 0 <= quality <= 100 or not timestamp >= 0:
            raise SignalValueError(f"{source}:{number}: value out of range")
        out.append(FrameHash(frame_number, quality, pdq, timestamp))
    return tuple(out)


# ---------------------------------------------------------------------------
# Matching


def _rows(hashes: list[str]) -> npt.NDArray[np.uint64]:
    if not hashes:
        return np.empty((0, 4), dtype=np.uint64)
    raw = np.frombuffer(b"".join(bytes.fromhex(h) for h in hashes), dtype=">u8")
    return raw.astype(np.uint64).reshape(len(hashes), 4)


def distance_matrix(a: list[str], b: list[str]) -> npt.NDArray[np.int32]:
    """Pairwise Hamming distances between two lists of PDQ hex hashes (brute force)."""
    ra, rb = _rows(a), _rows(b)
    out = np.zeros((ra.shape[0], rb.shape[0]), dtype=np.int32)
    for col in range(4):
        out += np.bitwise_count(ra[:, col, None] ^ rb[None, :, col]).astype(np.int32)
    return out


@dataclass(frozen=True)
class VideoMatch:
    """vPDQ comparison of a query video with another video."""

    #: Share (0..100) of the query's unique good frames that match some frame of the other.
    query_match_percent: float
    #: Share (0..100) of the other video's unique good frames matched by some query frame.
    compared_match_percent: float
    matched: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "query_match_percent": round(self.query_match_percent, 2),
            "compared_match_percent": round(self.compared_match_percent, 2),
            "matched": self.matched,
        }


def _good(frames: Iterable[FrameHash], min_quality: int) -> list[FrameHash]:
    seen: set[str] = set()
    out = []
    for f in frames:
        if f.quality >= min_quality and f.pdq not in seen:
            seen.add(f.pdq)
            out.append(f)
    return out


def match_videos(
    query: Iterable[FrameHash],
    other: Iterable[FrameHash],
    *,
    distance_bits: int = DEFAULT_PDQ_THRESHOLD,
    min_quality: int = DEFAULT_MIN_QUALITY,
    query_match_percent: float = DEFAULT_MATCH_PERCENT,
    compared_match_percent: float = DEFAULT_MATCH_PERCENT,
) -> VideoMatch:
    """Compare two videos' frame hashes the way vPDQ does (unique frames, brute force)."""
    q, o = _good(query, min_quality), _good(other, min_quality)
    if not q or not o:
        return VideoMatch(0.0, 0.0, False)
    near = distance_matrix([f.pdq for f in q], [f.pdq for f in o]) <= distance_bits
    qp = 100.0 * float(near.any(axis=1).sum()) / len(q)
    op = 100.0 * float(near.any(axis=0).sum()) / len(o)
    return VideoMatch(qp, op, qp >= query_match_percent and op >= compared_match_percent)


@dataclass(frozen=True)
class ClipMatch:
    """Where a known clip appears inside a longer video."""

    #: Share (0..100) of the clip's unique good frames seen in the window.
    clip_coverage_percent: float
    start_s: float
    end_s: float
    matched: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "clip_coverage_percent": round(self.clip_coverage_percent, 2),
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "matched": self.matched,
        }


def find_clip(
    clip: Iterable[FrameHash],
    video: Iterable[FrameHash],
    *,
    distance_bits: int = DEFAULT_PDQ_THRESHOLD,
    min_quality: int = DEFAULT_MIN_QUALITY,
    coverage_percent: float = DEFAULT_MATCH_PERCENT,
    max_gap_s: float = 5.0,
) -> ClipMatch | None:
    """Find a short known clip inside a long video; None when no frame matches at all.

    The long video's matching frames are grouped into windows (gaps of at most
    ``max_gap_s``); the window covering the most clip frames is returned, matched when it
    covers at least ``coverage_percent`` of the clip.
    """
    c = _good(clip, min_quality)
    v = [f for f in video if f.quality >= min_quality]
    if not c or not v:
        return None
    v.sort(key=lambda f: f.timestamp_s)
    near = distance_matrix([f.pdq for f in v], [f.pdq for f in c]) <= distance_bits
    hit_rows = np.flatnonzero(near.any(axis=1))
    if hit_rows.size == 0:
        return None
    best: tuple[int, int, int] | None = None  # (covered, first row, last row)

    def consider(first: int, last: int) -> None:
        nonlocal best
        covered = int(near[hit_rows[first : last + 1]].any(axis=0).sum())
        if best is None or covered > best[0]:
            best = (covered, int(hit_rows[first]), int(hit_rows[last]))

    start = 0
    for i in range(1, hit_rows.size + 1):
        if i == hit_rows.size or (
            v[hit_rows[i]].timestamp_s - v[hit_rows[i - 1]].timestamp_s > max_gap_s
        ):
            consider(start, i - 1)
            start = i
    assert best is not None
    covered, first, last = best
    pct = 100.0 * covered / len(c)
    return ClipMatch(pct, v[first].timestamp_s, v[last].timestamp_s, pct >= coverage_percent)
