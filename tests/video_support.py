"""Synthetic test videos encoded with PyAV (no ffmpeg program, never real material)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import av
import numpy as np
import numpy.typing as npt

from safestream.demo import synthetic_image
from safestream.signals.synthetic import photo_like

if TYPE_CHECKING:
    from safestream.engine import Engine
    from safestream.store.banks import BankRepository

RGB = npt.NDArray[np.uint8]
WIDTH, HEIGHT = 320, 240


def known_frame(seed: int, width: int = WIDTH, height: int = HEIGHT) -> RGB:
    """A benign synthetic picture (drawn shapes) as RGB."""
    return np.asarray(synthetic_image(seed, (width, height)).convert("RGB"), dtype=np.uint8)


def other_frame(seed: int, width: int = WIDTH, height: int = HEIGHT) -> RGB:
    """An unrelated photo-like synthetic frame."""
    return photo_like(seed, width, height)


def scene(picture: RGB, seconds: float, fps: int, *, jitter: int = 1, seed: int = 0) -> list[RGB]:
    """``seconds`` of frames of one picture with a little noise (a static shot)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(round(seconds * fps)):
        noise = rng.integers(-jitter, jitter + 1, size=picture.shape, dtype=np.int16)
        out.append(np.clip(picture.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


def encode(
    target: str | Path | IO[bytes],
    frames: Iterable[RGB],
    *,
    fps: int = 10,
    container_format: str | None = None,
    gop: int = 10,
    options: dict[str, str] | None = None,
) -> None:
    """Encode RGB frames as H.264 (yuv420p) into a file or a binary file object."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    kwargs: dict[str, Any] = {"mode": "w"}
    if container_format:
        kwargs["format"] = container_format
    with av.open(str(target) if isinstance(target, Path) else target, **kwargs) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "g": str(gop),
            **(options or {}),
        }
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def shots(pictures: Sequence[RGB], seconds_each: float, fps: int) -> list[RGB]:
    """Consecutive static shots of each picture."""
    out: list[RGB] = []
    for i, p in enumerate(pictures):
        out += scene(p, seconds_each, fps, seed=i)
    return out


def decoded_frames(path: Path, max_side: int | None = 512) -> dict[float, RGB]:
    """Every frame of a video, fully decoded, scaled as samples are, by stream time.

    Times are seconds since the first frame, rounded to 0.1 ms (the key samples use).
    """
    from safestream.signals.video import frame_rgb, frames_by_time

    return {t: frame_rgb(frame, max_side) for t, frame in frames_by_time(path)}


def assert_samples_exact(
    samples: Sequence[Any], path: Path, *, interval: float, tolerance: float | None = None
) -> None:
    """One sample per interval, each within [due - tolerance, due + interval), and each
    bit-identical to the frame full decoding gives at its time."""
    frames = decoded_frames(path)
    slack = 0.25 * interval if tolerance is None else tolerance
    for k, sample in enumerate(samples):
        t = sample.stream_time_s
        assert k * interval - slack - 1e-6 <= t < (k + 1) * interval, (k, t)
        assert round(t, 4) in frames, (k, t)
        assert np.array_equal(sample.rgb, frames[round(t, 4)]), (k, t)


def sample_file(path: Path, fps: float = 1.0, **kwargs: Any) -> tuple[list[Any], Any]:
    """All samples of a video file through the live Sampler, and the sampler (its stats)."""
    from safestream.live import Sampler, Source

    container = Source(url=str(path)).open()
    sampler = Sampler(fps, **kwargs)
    try:
        return list(sampler.samples(container)), sampler
    finally:
        container.close()


def engine_with_known_video(
    repo: BankRepository, tmp_path: Path, pictures: Sequence[RGB], *, fps: int = 10
) -> Engine:
    """An engine whose bank ``known-video`` holds a clip of ``pictures`` (1 s each),
    external id ``clip-1``."""
    from safestream.engine import Engine
    from safestream.engine.video import add_video
    from safestream.signals.video import hash_video

    clip = tmp_path / "known.mp4"
    encode(clip, shots(pictures, 1, fps), fps=fps)
    repo.create_bank("known-video", source="test")
    add_video(repo, "known-video", hash_video(clip), external_id="clip-1")
    return Engine(repo)


def encode_tracks(
    path: Path,
    *streams: Sequence[RGB],
    fps: int = 10,
    default: int | None = None,
    container_format: str = "mp4",
    preset: str = "ultrafast",
) -> Path:
    """One H.264 video stream per frame list, interleaved; ``default``: the stream
    flagged default (None: the muxer's own flags)."""
    from fractions import Fraction

    with av.open(str(path), "w", format=container_format) as out:
        outs = []
        for k, frames in enumerate(streams):
            h, w = frames[0].shape[:2]
            s = out.add_stream("libx264", rate=fps)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.options = {"preset": preset, "g": str(fps)}
            if default is not None:
                s.disposition = (
                    av.stream.Disposition.default if k == default else av.stream.Disposition(0)
                )
            outs.append((s, frames))
        for i in range(max(len(f) for f in streams)):
            for s, frames in outs:
                if i < len(frames):
                    frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                    frame.pts, frame.time_base = i, Fraction(1, fps)
                    for packet in s.encode(frame):
                        out.mux(packet)
        for s, _ in outs:
            for packet in s.encode():
                out.mux(packet)
    return path
