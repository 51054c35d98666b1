"""Live sources (PyAV) and keyframe-aware sampling of N frames a second.

Sampling decodes as little as it can. Every packet is demuxed (cheap); the decoder
runs in one of two modes, chosen from the measured keyframe interval:

* **keyframes only** (``skip_frame = "NONKEY"``) when keyframes come at least as often
  as samples are due (GOP <= sample interval + tolerance): a sample is the first
  keyframe at or after its due time (minus the tolerance);
* **every frame** otherwise (long GOPs): each frame is decoded, because a P-frame
  cannot be decoded without its predecessors, but only the frame that falls due is
  converted to RGB and scaled down, which is where the cost is.

The mode changes only at a keyframe, so references are always valid. A stream starts
in "every frame" until two keyframes have shown its GOP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from safestream.errors import InputError
from safestream.signals.video import VideoError, frame_rgb, require_av

#: Frames are scaled so that their longer side is at most this before hashing/classifying.
DEFAULT_MAX_SIDE = 512
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "stream_id": self.stream_id,
            "account_id": self.account_id,
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

    def __post_init__(self) -> None:
        if (self.url is None) == (self.fileobj is None):
            raise InputError("a source needs exactly one of url and fileobj")
        if not self.speed > 0:
            raise InputError(f"speed must be > 0, got {self.speed}")

    @classmethod
    def parse(cls, spec: str, *, listen: bool = False, realtime: bool | None = None) -> Source:
        """A source from a CLI argument: ``-`` (MPEG-TS on stdin), a path or a URL."""
        import sys

        if spec == "-":
            return cls(fileobj=sys.stdin.buffer, format="mpegts")
        is_url = "://" in spec
        return cls(
            url=spec,
            listen=listen,
            realtime=(not is_url) if realtime is None else realtime,
            reconnect=is_url and not listen,
        )

    def describe(self) -> str:
        """A name for messages (never credentials: the URL's user info is dropped)."""
        if self.url is None:
            return "pipe"
        if "@" in self.url and "://" in self.url:
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}://{rest.split('@', 1)[1]}"
        return self.url

    def open(self) -> Any:
        """Open the container (blocks until a listener gets its broadcaster)."""
        av = require_av()
        options = dict(self.options)
        if self.listen and self.url is not None:
            if self.url.startswith("rtsp://"):
                # FFmpeg's default RTSP listen mode errors; this is the one that works.
                options.setdefault("rtsp_flags", "listen")
                options.setdefault("listen_timeout", "20")
            else:
                options.setdefault("listen", "1")
        target: Any = self.url if self.url is not None else self.fileobj
        try:
            return av.open(target, mode="r", format=self.format, options=options, timeout=20)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise StreamError(
                f"{self.describe()}: cannot open ({type(exc).__name__}: {exc})"
            ) from exc


@dataclass(frozen=True)
class Sample:
    """One sampled frame of a stream."""

    #: Seconds since the stream's first frame.
    stream_time_s: float
    #: ``time.monotonic()`` when the packet carrying the frame arrived.
    arrived_at: float
    rgb: npt.NDArray[np.uint8]
    keyframe: bool


@dataclass
class SamplerStats:
    """What the sampler has done so far."""

    packets: int = 0
    frames_decoded: int = 0
    samples: int = 0
    bad_packets: int = 0
    keyframe_mode: bool = False


class Sampler:
    """Yields samples of a container's first video stream at ``sample_fps``."""

    def __init__(
        self,
        sample_fps: float = 1.0,
        *,
        keyframe_tolerance_s: float | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        max_frame_pixels: int = 8192 * 8192,
    ) -> None:
        if not sample_fps > 0:
            raise InputError(f"sample_fps must be > 0, got {sample_fps}")
        self.interval_s = 1.0 / sample_fps
        #: A keyframe this close before a due time is taken as that sample.
        self.tolerance_s = (
            0.25 * self.interval_s if keyframe_tolerance_s is None else keyframe_tolerance_s
        )
        self.max_side = max_side
        self.max_frame_pixels = max_frame_pixels
        self.stats = SamplerStats()

    def samples(
        self,
        container: Any,
        *,
        stop: threading.Event | None = None,
        realtime: bool = False,
        speed: float = 1.0,
        what: str = "stream",
    ) -> Iterator[Sample]:
        """Samples in stream order until the stream ends or ``stop`` is set."""
        av = require_av()
        if not container.streams.video:
            raise StreamError(f"{what}: the source has no video stream")
        stream = container.streams.video[0]
        cc = stream.codec_context
        cc.skip_frame = "DEFAULT"
        keyframe_mode = False
        last_key: float | None = None
        gop: float | None = None
        first_time: float | None = None
        wall_start: float | None = None
        next_due = 0.0
        arrivals: dict[int, float] = {}
        bad = 0
        for packet in container.demux(stream):
            if stop is not None and stop.is_set():
                return
            arrived = time.monotonic()
            if packet.pts is not None and packet.time_base is not None:
                pt = float(packet.pts * packet.time_base)
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
                arrivals[int(packet.pts)] = arrived
                if len(arrivals) > 512:
                    for key in list(arrivals)[:256]:
                        del arrivals[key]
                if packet.is_keyframe:
                    if last_key is not None and pt > last_key:
                        gop = pt - last_key
                    last_key = pt
                    want = gop is not None and gop <= self.interval_s + self.tolerance_s
                    if want != keyframe_mode:
                        keyframe_mode = want
                        cc.skip_frame = "NONKEY" if want else "DEFAULT"
                        self.stats.keyframe_mode = want
            if packet.size:
                self.stats.packets += 1
            try:
                frames = packet.decode()
                bad = 0
            except (av.error.FFmpegError, ValueError) as exc:
                bad += 1
                self.stats.bad_packets += 1
                if bad >= MAX_BAD_PACKETS:
                    raise StreamError(
                        f"{what}: {bad} undecodable packets in a row ({exc}); corrupt stream"
                    ) from exc
                continue
            for frame in frames:
                self.stats.frames_decoded += 1
                if frame.width * frame.height > self.max_frame_pixels:
                    raise StreamError(
                        f"{what}: frames of {frame.width}x{frame.height} exceed "
                        f"{self.max_frame_pixels} pixels"
                    )
                t_abs = float(frame.time) if frame.time is not None else 0.0
                if first_time is None:
                    first_time = t_abs
                t = t_abs - first_time
                # Only a keyframe may stand in early for a due sample: decoding it is free.
                slack = self.tolerance_s if frame.key_frame else 0.0
                if t + slack + 1e-6 < next_due:
                    continue
                next_due = (int((t + slack + 1e-6) / self.interval_s) + 1) * self.interval_s
                self.stats.samples += 1
                yield Sample(
                    stream_time_s=t,
                    arrived_at=arrivals.get(int(frame.pts), arrived)
                    if frame.pts is not None
                    else arrived,
                    rgb=frame_rgb(frame, self.max_side),
                    keyframe=bool(frame.key_frame),
                )
