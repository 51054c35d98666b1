"""Live sources (PyAV) and keyframe-aware sampling of N frames a second.

Sampling decodes as little as it can. Every packet is demuxed (cheap); what is decoded
depends on the :class:`Sampler`'s strategy:

* **lazy** (the default): a GOP's packets are held, undecoded, until a sample falls
  due; then they are decoded from the GOP's keyframe up to the due frame, and decoding
  stops again. The rest of a GOP after its last due sample is never decoded; decoding
  restarts only at an instantaneous decoder refresh (H.264 IDR, HEVC IDR/BLA), never
  at a recovery point (intra refresh, open GOP) flagged as a keyframe. With
  keyframes at least once per sample interval this decodes keyframes only; with a
  2 s GOP at 1 sample/s it decodes about half the frames. Within those, a picture
  that no other picture references (H.264 ``nal_ref_idc == 0``; HEVC sub-layer
  non-reference types in the top sub-layer: non-reference B-frames) and comes
  before the due time is dropped undecoded (``drop_unreferenced``), another ~45 %
  of the frames with B-frames. With ``ip_chain`` (H.264) no B-picture is decoded at
  all, referenced ones included, while the slice headers show that every decoded
  P-slice predicts only from decoded pictures (:mod:`safestream.live.h264`); the
  sample is then the first I- or P-picture at or after the due time. With
  ``early_drain`` the decoder is drained right after the due frame when the next
  sample falls in the next GOP;
* **keyframe**: keyframes only (``skip_frame = "NONKEY"``) when the measured GOP is at
  most the sample interval (plus a tolerance), otherwise every frame;
* **all**: every frame (the reference in tests and benchmarks).

Decoding is most of the cost; only the frame that falls due is hashed (from its luma,
:func:`~safestream.signals.video.frame_pdq`), and converted to RGB only when asked
for. A sample is the first decoded frame at or after its due time; a keyframe up to
the tolerance before it may stand in.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from safestream.errors import InputError
from safestream.live.h264 import (
    SLICE_B,
    SLICE_P,
    SLICE_SP,
    ParameterSets,
    RefTracker,
    SliceHeader,
    Unsupported,
)
from safestream.signals.pdq import pdq_from_rgb
from safestream.signals.video import (
    MediaClock,
    VideoError,
    frame_pdq,
    frame_rgb,
    frame_rgb_stretched,
    frames_per_sample_cap,
    preferred_video_stream,
    require_av,
)

#: Frames are scaled so that their longer side is at most this before hashing/classifying.
DEFAULT_MAX_SIDE = 512
#: How much of a live source (URL or pipe) is probed before sampling starts (microseconds).
LIVE_ANALYZE_US = 500_000
#: Consecutive undecodable packets after which a stream is taken as corrupt or hostile.
MAX_BAD_PACKETS = 50


class StreamError(VideoError):
    """A live source could not be opened, or its content is corrupt or hostile."""


@dataclass(frozen=True)
class StreamContext:
    """Who is streaming: carried into events, actions and cases."""

    stream_id: str
    account_id: str | None = None
    ip_address: str | None = None
    source_port: int | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    username: str | None = None
    profile_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "stream_id": self.stream_id,
            "account_id": self.account_id,
            "username": self.username,
            "profile_url": self.profile_url,
            "ip_address": self.ip_address,
            "source_port": self.source_port,
            "started_at": self.started_at.isoformat(),
        }


@dataclass
class Source:
    """Where a stream comes from: a URL or path, or an open binary file object (a pipe).

    ``realtime`` plays a file at its own pace (``speed`` times real time), as a live
    source would arrive. ``listen`` makes PyAV the RTMP/RTSP server the broadcaster
    pushes to. ``reconnect`` retries a dropped network source with backoff.
    ``hwaccel`` decodes on a hardware device of that FFmpeg type (``"cuda"``: NVIDIA's
    NVDEC) instead of the CPU, with no silent fallback: where the device cannot be
    opened, opening the source fails with a :class:`StreamError` that says so. Frames
    are copied back to memory as they are decoded; sampling is unchanged.
    """

    url: str | None = None
    fileobj: IO[bytes] | None = None
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    realtime: bool = False
    speed: float = 1.0
    listen: bool = False
    reconnect: bool = False
    max_reconnects: int = 5
    #: First reconnect delay; it doubles on each try (at most 10 s).
    reconnect_delay_s: float = 0.5
    #: FFmpeg hardware device type to decode on (``hwdevices_available()``), or None.
    hwaccel: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.fileobj is None):
            raise InputError("a source needs exactly one of url and fileobj")
        if not self.speed > 0:
            raise InputError(f"speed must be > 0, got {self.speed}")
        if self.hwaccel is not None and (
            not isinstance(self.hwaccel, str) or not self.hwaccel.strip()
        ):
            raise InputError(f"hwaccel must be a device type such as 'cuda', got {self.hwaccel!r}")

    @classmethod
    def parse(
        cls,
        spec: str,
        *,
        listen: bool = False,
        realtime: bool | None = None,
        hwaccel: str | None = None,
    ) -> Source:
        """A source from a CLI argument: ``-`` (MPEG-TS on stdin), a path or a URL."""
        import sys

        if spec == "-":
            return cls(fileobj=sys.stdin.buffer, format="mpegts", hwaccel=hwaccel)
        is_url = "://" in spec
        return cls(
            url=spec,
            listen=listen,
            realtime=(not is_url) if realtime is None else realtime,
            reconnect=is_url and not listen,
            hwaccel=hwaccel,
        )

    def describe(self) -> str:
        """A name for messages (never credentials: the URL's user info is dropped)."""
        if self.url is None:
            return "pipe"
        if "://" in self.url:
            # User info dropped, secret query values (SRT passphrase, tokens) masked.
            from safestream.live.relay import redact

            return redact(self.url)
        return self.url

    def open_options(self) -> dict[str, Any]:
        """Keyword arguments of ``av.open`` for decoding: ``hwaccel`` for
        ``self.hwaccel`` (never falling back to the CPU), or none."""
        if self.hwaccel is None:
            return {}
        from av.codec.hwaccel import HWAccel, hwdevices_available

        known = list(hwdevices_available())
        if self.hwaccel not in known:
            raise StreamError(
                f"{self.describe()}: hardware decoding {self.hwaccel!r} is not in this "
                f"FFmpeg build; it has: {', '.join(known) or 'none'}"
            )
        return {"hwaccel": HWAccel(self.hwaccel, allow_software_fallback=False)}

    def open(self, stop: threading.Event | None = None) -> Any:
        """Open the container (blocks until a listener gets its broadcaster).

        ``stop``, when set, ends a relayed source's reads at once (see
        :mod:`safestream.live.relay`).
        """
        av = require_av()
        options = dict(self.options)
        if self.fileobj is not None or (self.url is not None and "://" in self.url):
            # Probing a live source waits for streams that may never come (FLV from an
            # RTMP server announces audio; the default 5 s is 5 s without samples at each
            # (re)connect): 0.5 s of it is enough to find the video stream.
            options.setdefault("analyzeduration", str(LIVE_ANALYZE_US))
        if self.listen and self.url is not None:
            if self.url.startswith("rtsp://"):
                # FFmpeg's default RTSP listen mode errors; this is the one that works.
                options.setdefault("rtsp_flags", "listen")
                options.setdefault("listen_timeout", "20")
            else:
                options.setdefault("listen", "1")
        target: Any = self.url if self.url is not None else self.fileobj
        extra = self.open_options()
        try:
            return av.open(
                target, mode="r", format=self.format, options=options, timeout=20, **extra
            )
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            if self.hwaccel is not None:
                raise StreamError(
                    f"{self.describe()}: cannot open with hardware decoding "
                    f"({self.hwaccel}): {type(exc).__name__}: {exc}; is the device there, "
                    "with its driver? (without --hwaccel it decodes on the CPU)"
                ) from exc
            if isinstance(exc, av.error.ProtocolNotFoundError) and self.url is not None:
                # PyAV's FFmpeg lacks it (SRT): the system ffmpeg program may relay it.
                from safestream.live import relay

                if relay.can_relay(self.url):
                    return relay.open_relayed(self, stop=stop)
            detail = str(exc)
            if self.url is not None:  # FFmpeg's message may quote the URL and its password
                detail = detail.replace(self.url, self.describe())
            raise StreamError(
                f"{self.describe()}: cannot open ({type(exc).__name__}: {detail})"
            ) from exc


class Sample:
    """One sampled frame of a stream.

    It holds the decoded frame until it is analysed: the PDQ is computed from the
    frame's luma (:func:`~safestream.signals.video.frame_pdq`) and the RGB pixels
    (scaled so the longer side is at most ``max_side``) only when asked for (a
    classifier, evidence). :meth:`release` lets the frame go.
    """

    __slots__ = (
        "_frame",
        "_lock",
        "_max_side",
        "_rgb",
        "arrived_at",
        "keyframe",
        "stream_index",
        "stream_time_s",
    )

    def __init__(
        self,
        stream_time_s: float,
        arrived_at: float,
        keyframe: bool,
        *,
        frame: Any = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        rgb: npt.NDArray[np.uint8] | None = None,
        stream_index: int = 0,
    ) -> None:
        if frame is None and rgb is None:
            raise InputError("a sample needs a frame or RGB pixels")
        #: Seconds since the stream's first frame.
        self.stream_time_s = stream_time_s
        #: The container's index of the video stream the frame is from.
        self.stream_index = stream_index
        #: ``time.monotonic()`` when the packet carrying the frame arrived.
        self.arrived_at = arrived_at
        self.keyframe = keyframe
        self._frame = frame
        self._max_side = max_side
        self._rgb = rgb
        self._lock = threading.Lock()

    @property
    def rgb(self) -> npt.NDArray[np.uint8]:
        """RGB24 pixels, scaled down (made on first use, then kept)."""
        with self._lock:
            if self._rgb is None:
                if self._frame is None:
                    raise StreamError("the sample's frame was released before its pixels were made")
                self._rgb = frame_rgb(self._frame, self._max_side)
            return self._rgb

    def rgb_stretched(self, width: int, height: int) -> npt.NDArray[np.uint8]:
        """RGB24 pixels stretched to exactly ``width`` x ``height`` in one resample from
        the decoded frame (:func:`~safestream.signals.video.frame_rgb_stretched`), for
        classifiers that stretch their input first; not kept. Once the frame is released,
        the scaled-down :attr:`rgb` as it is (a classifier stretches it itself)."""
        frame = self._frame
        if frame is not None:
            return frame_rgb_stretched(frame, width, height)
        return self.rgb

    def pdq(self) -> tuple[str, int]:
        """PDQ ``(hex, quality)``: of the full-size frame from its luma while the frame is
        held, else of the RGB pixels."""
        frame = self._frame
        if frame is not None:
            return frame_pdq(frame)
        return pdq_from_rgb(self.rgb)

    def release(self) -> None:
        """Let the decoded frame go (RGB pixels already made are kept)."""
        self._frame = None


def nal_length_size(codec: str, extradata: bytes | None) -> int:
    """Bytes of each NAL unit's length prefix (AVCC/HVCC: MP4, FLV), from the extradata."""
    if extradata and extradata[0] == 1:
        if codec == "h264" and len(extradata) > 4:
            return (extradata[4] & 3) + 1
        if codec == "hevc" and len(extradata) > 21:
            return (extradata[21] & 3) + 1
    return 4


def _length_prefixed(data: bytes, length_size: int) -> bool:
    """Whether ``length_size``-byte lengths tile the data exactly (AVCC/HVCC framing)."""
    i = 0
    while i + length_size <= len(data):
        n = int.from_bytes(data[i : i + length_size], "big")
        if n == 0:
            return False
        i += length_size + n
    return i == len(data)


def _nal_starts(data: bytes, length_size: int) -> Iterator[int]:
    """The offset of each NAL unit's header, in Annex B or length-prefixed framing.

    A length prefix can look like a start code (a 256-511 byte NAL unit after a 4-byte
    length begins 00 00 01): data whose lengths tile it exactly is length-prefixed.
    """
    if data.startswith((b"\0\0\1", b"\0\0\0\1")) and not _length_prefixed(data, length_size):
        i = data.find(b"\0\0\1")
        while 0 <= i < len(data) - 3:
            yield i + 3
            i = data.find(b"\0\0\1", i + 3)
        return
    i = 0
    while i + length_size < len(data):
        n = int.from_bytes(data[i : i + length_size], "big")
        yield i + length_size
        i += length_size + n


def _nal_headers(data: bytes, length_size: int) -> Iterator[int]:
    """The first header byte of each NAL unit, in Annex B or length-prefixed framing."""
    for i in _nal_starts(data, length_size):
        yield data[i]


def resumable_keyframe(packet: Any, codec: str, length_size: int = 4) -> bool:
    """Whether decoding may restart at this keyframe packet after earlier ones were skipped.

    Only an instantaneous decoder refresh is safe: H.264 IDR, HEVC IDR/BLA. An H.264
    recovery point (intra refresh, open GOP) or an HEVC CRA is flagged as a keyframe
    too, but pictures around it may reference earlier ones, and a decoder reset there
    outputs nothing until the refresh completes. Other codecs' keyframes reset fully.
    """
    if codec not in ("h264", "hevc"):
        return True
    data = bytes(packet)
    for header in _nal_headers(data, length_size):
        if codec == "h264" and header & 0x1F == 5:
            return True
        if codec == "hevc" and 16 <= (header >> 1) & 0x3F <= 20:
            return True
    return False


def hevc_top_sub_layer(extradata: bytes | None, length_size: int = 4) -> int | None:
    """The highest HEVC temporal sub-layer (TemporalId) a stream declares, if known.

    Read from the ``hvcC`` extradata (MP4, FLV) when it gives the number of temporal
    layers, else from an in-band SPS (Annex B extradata or a keyframe packet):
    ``sps_max_sub_layers_minus1``. None when neither says.
    """
    if not extradata:
        return None
    if extradata[0] == 1 and len(extradata) > 22:
        layers = (extradata[21] >> 3) & 7
        if layers:
            return layers - 1
        i = 23  # the parameter set arrays: type, count, then (length, NAL unit) each
        for _ in range(extradata[22]):
            if i + 3 > len(extradata):
                break
            nal_type, count = extradata[i] & 0x3F, int.from_bytes(extradata[i + 1 : i + 3], "big")
            i += 3
            for _ in range(count):
                start = i + 2
                if nal_type == 33 and start + 2 < len(extradata):
                    return (extradata[start + 2] >> 1) & 7
                i = start + int.from_bytes(extradata[i:start], "big")
        return None
    for i in _nal_starts(extradata, length_size):
        if i + 2 < len(extradata) and (extradata[i] >> 1) & 0x3F == 33:  # SPS
            return (extradata[i + 2] >> 1) & 7
    return None


def unreferenced_packet(
    data: bytes, codec: str, length_size: int = 4, hevc_top: int | None = None
) -> bool:
    """Whether no other picture can reference this packet's picture (so it may be dropped).

    H.264: every slice NAL unit has ``nal_ref_idc == 0``. HEVC: every picture NAL unit is
    a sub-layer non-reference type (TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N, reserved
    even types below 16) in the highest temporal sub-layer ``hevc_top`` (a lower
    sub-layer's non-reference picture may still be referenced by a higher sub-layer);
    never when ``hevc_top`` is unknown. False for other codecs and for packets with no
    picture data.
    """
    found = False
    if codec == "h264":
        for i in _nal_starts(data, length_size):
            header = data[i]
            if 1 <= header & 0x1F <= 5:
                if header & 0x60:
                    return False
                found = True
        return found
    if codec == "hevc" and hevc_top is not None:
        for i in _nal_starts(data, length_size):
            nal_type = (data[i] >> 1) & 0x3F
            if nal_type < 32:
                if nal_type >= 16 or nal_type & 1 or i + 1 >= len(data):
                    return False
                if (data[i + 1] & 7) - 1 != hevc_top:
                    return False
                found = True
        return found
    return False


@dataclass
class SamplerStats:
    """What the sampler has done so far."""

    packets: int = 0
    #: Packets sent to the decoder.
    packets_decoded: int = 0
    #: Packets never decoded (lazy strategy): the rest of a GOP after its last due
    #: sample, and the unreferenced pictures before a due time (``unreferenced``).
    packets_skipped: int = 0
    #: Of ``packets_skipped``: unreferenced pictures (non-reference B-frames) dropped
    #: undecoded because they come before the due time.
    unreferenced: int = 0
    frames_decoded: int = 0
    samples: int = 0
    bad_packets: int = 0
    #: The measured GOP is short enough that only keyframes are decoded.
    keyframe_mode: bool = False
    #: Decoder drains at a keyframe after skipped packets (lazy strategy).
    flushes: int = 0
    #: Of ``packets_skipped``: B-pictures other pictures reference, skipped because the
    #: headers show that no decoded picture uses them (``ip_chain``, H.264).
    b_references_skipped: int = 0
    #: Times ``ip_chain`` was turned off for the stream (a P-picture references a
    #: B-picture, or the headers use something the model does not cover), and why.
    chain_fallbacks: int = 0
    chain_fallback_reason: str | None = None
    #: Decoder drained right after a due frame because the next sample falls in the next
    #: GOP (``early_drain``): the frames the decoder's reorder delay holds back come out
    #: without decoding more pictures.
    early_drains: int = 0
    #: Packets decoded a second time (a sample fell due after an early drain in the same
    #: GOP, or after ``ip_chain`` fell back).
    packets_redecoded: int = 0
    #: Times the packet timestamps went back, repeated or jumped forward over a minute
    #: (the stream's time goes on from where it was: :class:`MediaClock`).
    timestamp_discontinuities: int = 0
    #: Samples that fell due by the packet count, not the time: timestamps that advance
    #: slower than the frames (or content over 90 frames/s at 1 sample/s).
    samples_by_frame_count: int = 0


#: Decoding strategies: ``lazy`` (default), ``keyframe`` and ``all`` (for comparison).
STRATEGIES = ("lazy", "keyframe", "all")
#: FFmpeg's ``skip_loop_filter`` levels: which pictures skip the deblocking filter.
#: ``none``: full quality; ``noref``: unreferenced pictures only (no error reaches
#: other pictures); ``bidir``: B-pictures; ``nokey``: all but keyframes; ``all``.
LOOP_FILTER_SKIPS = ("none", "noref", "bidir", "nokey", "all")
#: The default: unreferenced pictures only. Their deblocking error cannot spread to
#: other pictures: no PDQ drift was measured. ``all`` saves 10-25 % more CPU but
#: drifted up to 4 PDQ bits at a 2 s GOP and 16 at 10 s; bench/README.md ("Live")
#: has the figures of each level.
DEFAULT_LOOP_FILTER_SKIP = "noref"
#: A GOP longer than this many packets is decoded eagerly (bounds the packet buffer).
MAX_GOP_PACKETS = 2048
#: Packet timestamps may go back this far without counting as a discontinuity: PTS
#: reordered by B-frames where a container has no DTS, DTS guessed by a demuxer
#: (Matroska). Going back less does not move the stream's clock; the packet count
#: still bounds the time between samples.
REORDER_SLACK_S = 0.5


class Sampler:
    """Yields samples of one video stream of a container at ``sample_fps`` (by default
    the one players pick; :class:`SourceSampler` runs one per video stream).

    ``strategy`` says how much is decoded:

    * ``lazy`` (default): the packets of the current GOP are kept, undecoded, until a
      sample falls due (a packet whose time reaches the due time arrives); then they
      are decoded from the GOP's keyframe up to the due frame, and decoding stops
      again once the sample is taken. Packets after a GOP's last due sample are never
      decoded: at the next keyframe the decoder is drained (frames it still holds
      are considered, so decoder delay and B-frame reordering lose nothing) and
      reset. No GOP length is assumed, so a stream whose GOP changes is sampled
      just as well; when keyframes come at least once per interval, only they are
      decoded;
    * ``keyframe``: keyframes only when the measured GOP is short enough, otherwise
      every frame;
    * ``all``: every frame (the reference the others are compared with).

    With ``drop_unreferenced`` (lazy strategy, H.264/HEVC), a picture no other picture
    references (a non-reference B-frame) whose time is before the due time is dropped
    undecoded; a packet at or after the due time is always decoded. A sample is still
    the first decoded frame at or after its due time, within one interval of it.
    ``skip_loop_filter`` (one of :data:`LOOP_FILTER_SKIPS`) trades deblocking of some
    pictures for CPU; ``decoder_threads`` is the decoder's slice threads (0: FFmpeg's
    automatic count); one per decoder is cheapest when many streams share the
    cores. Frame threading is never used: it holds frames back, so a due sample would
    need packets that have not arrived yet.

    Stream times are the packets' own timestamps (DTS, else PTS) on a
    :class:`~safestream.signals.video.MediaClock`: where the publisher's timestamps
    reset, repeat or jump over a minute (an encoder restart, an HLS discontinuity, a
    hostile stream), the stream's time goes on one frame after where it was, so
    sampling and real-time pacing go on too (``timestamp_discontinuities`` counts
    them). Timestamps that crawl cannot stretch the interval either: at most
    ``ceil(90 / sample_fps)`` packets pass between samples (``samples_by_frame_count``).
    """

    def __init__(
        self,
        sample_fps: float = 1.0,
        *,
        keyframe_tolerance_s: float | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        max_frame_pixels: int = 8192 * 8192,
        strategy: str = "lazy",
        drop_unreferenced: bool = True,
        skip_loop_filter: str = DEFAULT_LOOP_FILTER_SKIP,
        decoder_threads: int = 1,
        ip_chain: bool = True,
        early_drain: bool = True,
    ) -> None:
        if not sample_fps > 0:
            raise InputError(f"sample_fps must be > 0, got {sample_fps}")
        if strategy not in STRATEGIES:
            raise InputError(
                f"unknown decoding strategy {strategy!r}; known: {', '.join(STRATEGIES)}"
            )
        if skip_loop_filter not in LOOP_FILTER_SKIPS:
            raise InputError(
                f"unknown skip_loop_filter {skip_loop_filter!r}; "
                f"known: {', '.join(LOOP_FILTER_SKIPS)}"
            )
        if isinstance(decoder_threads, bool) or not isinstance(decoder_threads, int):
            raise InputError(f"decoder_threads must be an integer, got {decoder_threads!r}")
        if not 0 <= decoder_threads <= 64:
            raise InputError(f"decoder_threads must be 0 (automatic) to 64, got {decoder_threads}")
        self.drop_unreferenced = drop_unreferenced
        self.ip_chain = ip_chain
        self.early_drain = early_drain
        self.skip_loop_filter = skip_loop_filter
        self.decoder_threads = decoder_threads
        self.interval_s = 1.0 / sample_fps
        #: A keyframe this close before a due time is taken as that sample.
        self.tolerance_s = (
            0.25 * self.interval_s if keyframe_tolerance_s is None else keyframe_tolerance_s
        )
        self.max_side = max_side
        self.max_frame_pixels = max_frame_pixels
        self.strategy = strategy
        self.stats = SamplerStats()
        #: The container stream being sampled (set when sampling starts).
        self.stream_index: int | None = None

    def samples(
        self,
        container: Any,
        *,
        stop: threading.Event | None = None,
        realtime: bool = False,
        speed: float = 1.0,
        what: str = "stream",
        stream: Any = None,
    ) -> Iterator[Sample]:
        """Samples in stream order until the stream ends or ``stop`` is set.

        ``stream`` is the container's video stream to sample; by default the one players
        pick (default-flagged, else the largest), not simply the first: an MPEG-TS source
        can carry a decoy programme first. :class:`SourceSampler` samples every one.
        """
        if stream is None:
            if not container.streams.video:
                raise StreamError(f"{what}: the source has no video stream")
            stream = preferred_video_stream(list(container.streams.video))
        for sample in self._sample(
            container, stream, None, stop=stop, realtime=realtime, speed=speed, what=what
        ):
            if sample is not None:
                yield sample

    def _sample(
        self,
        container: Any,
        stream: Any,
        packets: Iterator[Any] | None,
        *,
        stop: threading.Event | None,
        realtime: bool,
        speed: float,
        what: str,
        shared_origin: list[float | None] | None = None,
    ) -> Iterator[Sample | None]:
        """:meth:`samples` of ``stream``, from ``packets`` (default: the container's demux
        of the stream). A ``None`` from ``packets`` means "no packet yet": it is yielded
        back (the caller feeds the next packet and resumes). ``shared_origin`` (one item)
        is the time origin of several streams of one container: the first stream to
        start sets it, and every stream's times count from it."""
        av = require_av()
        self.stream_index = int(stream.index)
        cc = stream.codec_context
        cc.skip_frame = "DEFAULT"
        # Decoder settings take effect when the decoder opens, at the first packet.
        if self.skip_loop_filter != "none":
            cc.options = {**dict(cc.options), "skip_loop_filter": self.skip_loop_filter}
        cc.thread_type = "SLICE"
        cc.thread_count = self.decoder_threads
        lazy = self.strategy == "lazy"
        keyframe_mode = False
        last_key: float | None = None
        gop: float | None = None
        #: Stream time origin: the first decoded frame's time (lazy: the first keyframe's).
        origin: float | None = None

        def first_time(t: float) -> float:
            """The origin, from this stream's first time unless another stream set it."""
            if shared_origin is None:
                return t
            first = shared_origin[0]
            if first is None:
                shared_origin[0] = first = t
            return first

        wall_start: float | None = None
        next_due = 0.0
        # Packet times on a clock that never goes back (resets, repeats and jumps of the
        # stream's timestamps re-anchor it): each packet's arrival and clock offset by PTS.
        clock = MediaClock()
        arrivals: dict[int, tuple[float, float]] = {}
        # At most ``cap`` packets between samples, whatever the timestamps say.
        cap = frames_per_sample_cap(1.0 / self.interval_s)
        since = 0
        pulled = False
        bad = 0
        # Lazy state: the current GOP's packets, how many of them the decoder has had,
        # and whether a sample is due and not yet taken.
        gop_packets: list[Any] = []
        gop_offsets: list[float] = []
        fed = 0
        due = False
        seen_key = False
        time_base = stream.time_base
        stream_index = self.stream_index
        codec = str(cc.name)
        length_size = nal_length_size(codec, cc.extradata)
        drop = lazy and self.drop_unreferenced and codec in ("h264", "hevc")
        hevc_top = hevc_top_sub_layer(cc.extradata, length_size) if codec == "hevc" else None
        # Packet times as floats: Fraction arithmetic per packet is measurable at 30 fps.
        packet_base = float(time_base) if time_base is not None else None
        last_t = 0.0
        # I/P chain (H.264): parameter sets, the reference buffer as the stream marks it
        # and as the decoder has it, each GOP packet's slice headers (parsed once).
        chain = lazy and self.ip_chain and self.drop_unreferenced and codec == "h264"
        params = ParameterSets()
        real, dec = RefTracker(), RefTracker()
        gop_headers: dict[int, list[SliceHeader]] = {}
        # The furthest GOP packet processed (decoded or skipped) since the keyframe.
        high = 0
        # The due time an early drain was last tried for.
        drained_due: float | None = None
        if chain:
            try:
                params.seed(cc.extradata, _nal_starts(cc.extradata or b"", length_size))
            except Unsupported as exc:
                chain = False
                self.stats.chain_fallback_reason = str(exc)

        def decode(packet: Any) -> list[Any]:
            nonlocal bad
            try:
                frames: list[Any] = cc.decode(packet)
                bad = 0
                return frames
            except (av.error.FFmpegError, ValueError) as exc:
                bad += 1
                self.stats.bad_packets += 1
                if bad >= MAX_BAD_PACKETS:
                    raise StreamError(
                        f"{what}: {bad} undecodable packets in a row ({exc}); corrupt stream"
                    ) from exc
                return []

        def take(frame: Any, arrived: float) -> Sample | None:
            """The sample this frame gives, if one is due."""
            nonlocal origin, next_due, due, last_t, since, pulled
            self.stats.frames_decoded += 1
            if frame.width * frame.height > self.max_frame_pixels:
                raise StreamError(
                    f"{what}: frames of {frame.width}x{frame.height} exceed "
                    f"{self.max_frame_pixels} pixels"
                )
            # From the stream's time base: frames drained from the decoder carry none.
            entry = arrivals.get(int(frame.pts)) if frame.pts is not None else None
            if frame.pts is not None and packet_base is not None:
                t_abs = frame.pts * packet_base + (entry[1] if entry else clock.offset)
            elif frame.time is not None and frame.time == frame.time:
                t_abs = float(frame.time)
            else:
                t_abs = last_t
            last_t = t_abs
            if origin is None:
                origin = first_time(t_abs)
            t = t_abs - origin
            # Only a keyframe may stand in early for a due sample: decoding it is free.
            slack = self.tolerance_s if frame.key_frame else 0.0
            if t + slack + 1e-6 < next_due:
                return None
            next_due = (int((t + slack + 1e-6) / self.interval_s) + 1) * self.interval_s
            due = False
            if pulled:
                self.stats.samples_by_frame_count += 1
            since, pulled = 0, False
            self.stats.samples += 1
            return Sample(
                t,
                entry[0] if entry else arrived,
                bool(frame.key_frame),
                frame=frame,
                max_side=self.max_side,
                stream_index=stream_index,
            )

        def chain_skip(index: int, qt: float | None) -> bool:
            """Whether the I/P chain skips GOP packet ``index`` (marked in both buffers).

            Raises Unsupported when the chain cannot go on: the caller decodes every
            reference picture from then on (from the keyframe again if one was skipped).
            """
            fresh = index >= high
            headers = gop_headers.get(index)
            if headers is None:
                data = bytes(gop_packets[index])
                if (
                    qt is not None
                    and qt + 1e-6 < next_due
                    and unreferenced_packet(data, codec, length_size)
                ):
                    # Referenced by nothing and before the due time: no header needed.
                    if fresh:
                        self.stats.packets_skipped += 1
                        self.stats.unreferenced += 1
                    return True
                headers = params.picture(data, _nal_starts(data, length_size))
                gop_headers[index] = headers
            first = headers[0]
            if first.idr:
                real.reset()
                dec.reset()
            real.check_frame_num(first)
            types = {h.slice_type for h in headers}
            if qt is not None and (
                (not first.nal_ref_idc and qt + 1e-6 < next_due)
                or (types == {SLICE_B} and qt < next_due + 0.5 * self.interval_s)
            ):
                # Unreferenced before the due time, or a B-picture: the sample will be the
                # first I- or P-picture at or after the due time.
                real.add(first, False)
                dec.add(first, False, gap=True)
                if fresh:
                    self.stats.packets_skipped += 1
                    if first.nal_ref_idc:
                        self.stats.b_references_skipped += 1
                    else:
                        self.stats.unreferenced += 1
                return True
            if SLICE_B in types and not all(dec.short.values()):
                raise Unsupported("a B-picture must be decoded after skipped references")
            for h in headers:
                if h.slice_type in (SLICE_P, SLICE_SP):
                    refs = dec.list0(h)
                    if refs != real.list0(h) or not all(dec.short[fn] for fn in refs):
                        raise Unsupported("a P-picture references a skipped B-picture")
            real.add(first, True)
            dec.add(first, True)
            return False

        def restart() -> Generator[Sample, None, int]:
            """Drain and reset the decoder: the GOP is decoded again from its keyframe."""
            for frame in decode(None):
                sample = take(frame, time.monotonic())
                if sample is not None:
                    yield sample
            cc.flush_buffers()
            real.reset()
            dec.reset()
            return 0

        for packet in container.demux(stream) if packets is None else packets:
            if packet is None:
                yield None  # the caller has no packet for this stream yet
                continue
            if stop is not None and stop.is_set():
                return
            arrived = time.monotonic()
            pt: float | None = None
            if packet.size and packet_base is not None:
                stamp = packet.dts if packet.dts is not None else packet.pts
                if stamp is not None:
                    clock.update(stamp * packet_base, slack=REORDER_SLACK_S)
                    self.stats.timestamp_discontinuities = clock.discontinuities
            if packet.pts is not None and packet_base is not None:
                pt = packet.pts * packet_base + clock.offset
                if realtime:
                    if wall_start is None:
                        wall_start = arrived - pt / speed
                    delay = wall_start + pt / speed - arrived
                    if delay > 0:
                        if stop is not None and stop.wait(delay):
                            return
                        if stop is None:
                            time.sleep(delay)
                        arrived = time.monotonic()
                arrivals[int(packet.pts)] = (arrived, clock.offset)
                if len(arrivals) > 2 * MAX_GOP_PACKETS:
                    for key in list(arrivals)[:MAX_GOP_PACKETS]:
                        del arrivals[key]
                if packet.is_keyframe:
                    if last_key is not None and pt > last_key:
                        gop = pt - last_key
                    last_key = pt
                    want = (
                        self.strategy != "all"
                        and gop is not None
                        and gop <= self.interval_s + self.tolerance_s
                    )
                    if want != keyframe_mode:
                        keyframe_mode = want
                        self.stats.keyframe_mode = want
                        if not lazy:
                            cc.skip_frame = "NONKEY" if want else "DEFAULT"
            if packet.size:
                self.stats.packets += 1
                since += 1
                # Timestamps that crawl (or a stream over 90 frames/s) cannot stretch the
                # interval past ``cap`` packets: a sample falls due now.
                if (
                    since >= cap
                    and not pulled
                    and pt is not None
                    and origin is not None
                    and pt - origin + 1e-6 < next_due
                ):
                    next_due = max(pt - origin, 0.0)
                    pulled = True
            if not lazy:
                for frame in decode(packet):
                    sample = take(frame, arrived)
                    if sample is not None:
                        yield sample
                continue
            if not packet.size:
                continue  # a demuxer's flush packet: the end is handled below
            if packet.is_keyframe and resumable_keyframe(packet, codec, length_size):
                seen_key = True
                if drop and codec == "hevc" and hevc_top is None:
                    hevc_top = hevc_top_sub_layer(bytes(packet), length_size)
                if origin is None and pt is not None:
                    origin = first_time(pt)
                self.stats.packets_skipped += len(gop_packets) - high
                if fed:
                    # The decoder holds part of the last GOP: drain it (its delayed frames
                    # are still candidates) and reset it before the keyframe.
                    if fed < len(gop_packets):
                        self.stats.flushes += 1
                    for frame in decode(None):
                        sample = take(frame, arrived)
                        if sample is not None:
                            yield sample
                    cc.flush_buffers()
                gop_packets, gop_offsets, fed, high = [], [], 0, 0
                gop_headers.clear()
                real.reset()
                dec.reset()
            elif not seen_key:
                # Before the first clean keyframe (a stream joined mid-GOP, or intra
                # refresh with no IDR at all) every packet is decoded, as "all" does:
                # the decoder recovers on its own and no sample is lost.
                self.stats.packets_decoded += 1
                for frame in decode(packet):
                    sample = take(frame, arrived)
                    if sample is not None:
                        yield sample
                continue
            gop_packets.append(packet)
            gop_offsets.append(clock.offset)
            if not due:
                rel = None if pt is None or origin is None else pt - origin
                slack = self.tolerance_s if packet.is_keyframe else 0.0
                due = (
                    rel is None
                    or rel + slack + 1e-6 >= next_due
                    or len(gop_packets) > MAX_GOP_PACKETS
                )
            if chain and len(gop_packets) > MAX_GOP_PACKETS:
                # Decoded eagerly from here on: the chain's bookkeeping would be lost.
                chain = False
                self.stats.chain_fallbacks += 1
                self.stats.chain_fallback_reason = f"GOP longer than {MAX_GOP_PACKETS} packets"
                if not all(dec.short.values()):
                    fed = yield from restart()
            # Catch up from the last packet decoded; stop as soon as the sample is taken.
            while due and fed < len(gop_packets):
                index = fed
                queued = gop_packets[index]
                fresh = index >= high
                qt = (
                    queued.pts * packet_base + gop_offsets[index] - origin
                    if origin is not None and queued.pts is not None and packet_base is not None
                    else None
                )
                due_at = next_due
                if chain:
                    try:
                        skip = chain_skip(index, qt)
                    except Unsupported as exc:
                        chain = False
                        self.stats.chain_fallbacks += 1
                        self.stats.chain_fallback_reason = str(exc)
                        if not all(dec.short.values()):
                            fed = yield from restart()
                            continue
                        skip = False
                    if skip:
                        fed += 1
                        high = max(high, fed)
                        continue
                elif (
                    drop
                    and qt is not None
                    and qt + 1e-6 < next_due
                    and unreferenced_packet(bytes(queued), codec, length_size, hevc_top)
                ):
                    # Before the due time and referenced by nothing: never needed.
                    if fresh:
                        self.stats.packets_skipped += 1
                        self.stats.unreferenced += 1
                    fed += 1
                    high = max(high, fed)
                    continue
                if fresh:
                    self.stats.packets_decoded += 1
                else:
                    self.stats.packets_redecoded += 1
                for frame in decode(queued):
                    sample = take(frame, arrived)
                    if sample is not None:
                        yield sample
                fed += 1
                high = max(high, fed)
                if (
                    due
                    and self.early_drain
                    and drained_due != due_at
                    and qt is not None
                    and gop is not None
                    and last_key is not None
                    and origin is not None
                    and len(gop_packets) <= MAX_GOP_PACKETS
                    and qt + (self.tolerance_s if queued.is_keyframe else 0.0) + 1e-6 >= due_at
                    and due_at + self.interval_s + self.tolerance_s + 1e-6
                    >= last_key - origin + gop
                ):
                    # The due frame is in the decoder and the next sample falls in the
                    # next GOP: drain now rather than decode more pictures to push it out.
                    # Once per due time: if no frame came out (a broken picture), the GOP
                    # is decoded again and the ordinary way goes on.
                    drained_due = due_at
                    self.stats.early_drains += 1
                    for frame in decode(None):
                        sample = take(frame, arrived)
                        if sample is not None:
                            yield sample
                    cc.flush_buffers()
                    fed = 0
                    real.reset()
                    dec.reset()
            if len(gop_packets) > MAX_GOP_PACKETS:
                self.stats.packets_skipped += len(gop_packets) - high
                gop_packets, gop_offsets, fed, high = [], [], 0, 0  # decoded eagerly
                gop_headers.clear()
        if lazy:
            self.stats.packets_skipped += len(gop_packets) - high
        if lazy and fed:
            for frame in decode(None):
                sample = take(frame, time.monotonic())
                if sample is not None:
                    yield sample


#: Which video streams of a source are sampled: ``all`` (the default) or ``preferred``
#: (the one players pick).
VIDEO_STREAM_CHOICES = ("all", "preferred")
#: A live source with more video streams than this is refused (``all``): each one is
#: decoded, so more would multiply the work a single source costs. As for uploads
#: (:data:`~safestream.signals.video.MAX_VIDEO_STREAMS`): an HLS ladder of up to 8
#: renditions passes.
MAX_LIVE_VIDEO_STREAMS = 8


class SourceSampler:
    """Samples every video stream of a source, each with its own :class:`Sampler`.

    A source can carry several video streams: the renditions of a multitrack broadcast,
    or a second programme in an MPEG-TS. Which one a viewer sees is up to the player or
    the platform's transcoder, so with ``video_streams="all"`` (the default) each one
    is sampled at the same rate, the one players pick first; samples carry their
    ``stream_index``, and all streams' times count from the first frame of any of them
    (one timeline: a stream that starts later has later times). A source
    with more than ``max_video_streams`` video streams ends with a :class:`StreamError`.
    ``"preferred"`` samples only the stream players pick (for a platform that plays
    nothing else).

    One demux reads the container; each packet goes to its stream's sampler, which
    runs until it needs the next packet of its stream.
    """

    def __init__(
        self,
        make_sampler: Callable[[], Sampler],
        *,
        video_streams: str = "all",
        max_video_streams: int = MAX_LIVE_VIDEO_STREAMS,
    ) -> None:
        if video_streams not in VIDEO_STREAM_CHOICES:
            raise InputError(
                f"unknown video_streams {video_streams!r}; known: {', '.join(VIDEO_STREAM_CHOICES)}"
            )
        if isinstance(max_video_streams, bool) or not 1 <= max_video_streams <= 64:
            raise InputError(f"max_video_streams must be 1 to 64, got {max_video_streams!r}")
        self.make_sampler = make_sampler
        self.video_streams = video_streams
        self.max_video_streams = max_video_streams
        #: One per sampled video stream, the preferred one first (set when sampling starts).
        self.samplers: list[Sampler] = []

    @property
    def stats(self) -> SamplerStats:
        """The samplers' counters added up (the first fallback reason)."""
        total = SamplerStats()
        for sampler in self.samplers:
            for f in dataclasses.fields(SamplerStats):
                mine, theirs = getattr(total, f.name), getattr(sampler.stats, f.name)
                if isinstance(theirs, bool):
                    setattr(total, f.name, mine or theirs)
                elif isinstance(theirs, int):
                    setattr(total, f.name, mine + theirs)
                elif mine is None:
                    setattr(total, f.name, theirs)
        return total

    def samples(
        self,
        container: Any,
        *,
        stop: threading.Event | None = None,
        realtime: bool = False,
        speed: float = 1.0,
        what: str = "stream",
    ) -> Iterator[Sample]:
        """Samples of the chosen video streams, in the order their frames are read."""
        videos = list(container.streams.video)
        if not videos:
            raise StreamError(f"{what}: the source has no video stream")
        first = preferred_video_stream(videos)
        chosen = [first]
        if self.video_streams == "all":
            chosen += [s for s in videos if s.index != first.index]
        if len(chosen) > self.max_video_streams:
            raise StreamError(
                f"{what}: the source has {len(chosen)} video streams; at most "
                f"{self.max_video_streams} are monitored per source (each is decoded: a "
                "picture could otherwise hide in a stream that is not looked at); raise "
                "the limit, or sample only the stream players pick (video_streams="
                "'preferred') where the platform plays nothing else"
            )
        self.samplers = [self.make_sampler() for _ in chosen]
        if len(chosen) == 1:
            yield from self.samplers[0].samples(
                container, stop=stop, realtime=realtime, speed=speed, what=what, stream=first
            )
            return
        boxes: dict[int, deque[Any]] = {int(s.index): deque() for s in chosen}
        ended = False
        # One timeline: every stream's times count from the first frame of any of them.
        origin: list[float | None] = [None]

        def feed(box: deque[Any]) -> Iterator[Any]:
            while box or not ended:
                yield box.popleft() if box else None

        running = {
            int(s.index): sampler._sample(
                container,
                s,
                feed(boxes[int(s.index)]),
                stop=stop,
                realtime=realtime,
                speed=speed,
                what=f"{what} (video stream {s.index})",
                shared_origin=origin,
            )
            for s, sampler in zip(chosen, self.samplers, strict=True)
        }

        def drive(index: int) -> Iterator[Sample]:
            """Run one stream's sampler until it needs a packet it has not got."""
            for sample in running[index]:
                if sample is None:
                    return
                yield sample
            del running[index]  # its packets ended, or stop was set

        for packet in container.demux(*chosen):
            if stop is not None and stop.is_set():
                return
            index = int(packet.stream.index)
            if index in running:
                boxes[index].append(packet)
                yield from drive(index)
        ended = True
        for index in list(running):
            yield from drive(index)
