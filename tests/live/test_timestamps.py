"""Timestamps that reset, repeat, crawl or jump cannot blind sampling (live and uploads).

A stream's timestamps come from its publisher or its file. Before the media clock, a
reset (concatenated segments, an encoder restart, a crafted file) made the samplers
wait for the new timestamps to catch up with the old ones: a banked picture shown
after the reset was never sampled. These tests build such streams from synthetic
segments and check that sampling goes on, that a banked picture after a reset is found
live and in an upload, and that ordinary streams (B-frames, four containers) never
count a discontinuity.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from safestream.engine import Engine
from safestream.engine.video import check_video
from safestream.live import Monitor, SampleAnalyzer, Sampler, Source, StreamContext
from safestream.signals.video import (
    MAX_TIMESTAMP_JUMP_S,
    MediaClock,
    VideoTooLongError,
    frames_per_sample_cap,
    hash_video,
)
from safestream.store.banks import BankRepository
from video_support import (
    engine_with_known_video,
    known_frame,
    other_frame,
    sample_file,
    shots,
)

FPS = 10
KNOWN = [known_frame(i) for i in (41, 42, 43)]
STRATEGIES: list[dict[str, Any]] = [
    {},
    {"ip_chain": False},
    {"ip_chain": False, "drop_unreferenced": False, "early_drain": False},
    {"strategy": "keyframe"},
    {"strategy": "all"},
]


def segment(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: int = FPS,
    start_s: float = 0.0,
    container_format: str = "mpegts",
    preset: str = "veryfast",
    gop: int = FPS,
) -> Path:
    """H.264 with B-frames (x264 ``veryfast``), its first frame at ``start_s``."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": preset, "g": str(gop), "sc_threshold": "0"}
        first = round(start_s * fps)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = first + i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def joined(path: Path, parts: list[Path]) -> Path:
    """MPEG-TS segments back to back, as a restarted encoder or a crafted file gives."""
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    return path


def filler(seconds: int, seed: int) -> list[np.ndarray]:
    return shots([other_frame(seed + i) for i in range(seconds)], 1, FPS)


@pytest.fixture
def reset_clip(tmp_path: Path) -> Path:
    """Three 4 s segments whose timestamps each start again at the same time."""
    parts = [segment(tmp_path / f"p{k}.ts", filler(4, 100 + 10 * k)) for k in range(3)]
    return joined(tmp_path / "reset.ts", parts)


def test_media_clock_goes_on_through_resets_repeats_and_jumps() -> None:
    clock = MediaClock()
    steps = [clock.update(t) for t in (10.0, 10.1, 10.2)]
    assert steps == pytest.approx([10.0, 10.1, 10.2])
    assert clock.update(0.0) == pytest.approx(10.3)  # a reset: one step on
    assert clock.update(0.1) == pytest.approx(10.4)
    assert clock.update(0.1) == pytest.approx(10.5)  # a repeat
    assert clock.update(0.1 + MAX_TIMESTAMP_JUMP_S + 1) == pytest.approx(10.6)  # a jump
    assert clock.update(0.1 + MAX_TIMESTAMP_JUMP_S + 6) == pytest.approx(15.6)  # 5 s: kept
    assert clock.discontinuities == 3
    # Within the slack a step back (reordered PTS) neither counts nor moves the clock.
    reordered = MediaClock()
    times = [reordered.update(t, slack=0.5) for t in (0.0, 0.3, 0.1, 0.2, 0.6, 0.4, 0.5)]
    assert reordered.discontinuities == 0
    assert times == pytest.approx([0.0, 0.3, 0.1, 0.2, 0.6, 0.4, 0.5])
    assert reordered.update(-5.0, slack=0.5) == pytest.approx(0.9)  # past the slack
    assert reordered.discontinuities == 1


@pytest.mark.parametrize("kwargs", STRATEGIES, ids=lambda k: ",".join(k) or "default")
def test_sampling_goes_on_after_the_timestamps_reset(reset_clip: Path, kwargs: Any) -> None:
    samples, sampler = sample_file(reset_clip, **kwargs)
    times = [s.stream_time_s for s in samples]
    assert len(times) == 12, times
    for k, t in enumerate(times):
        assert k - 0.25 - 1e-6 <= t < k + 1, (k, times)
    assert sampler.stats.timestamp_discontinuities == 2
    assert sampler.stats.samples_by_frame_count == 0


def test_hashing_an_upload_goes_on_after_the_timestamps_reset(reset_clip: Path) -> None:
    hashes = hash_video(reset_clip, fold_bits=None)
    assert [f.timestamp_s for f in hashes.frames] == pytest.approx(list(range(12)))
    assert hashes.timestamp_discontinuities == 2
    assert hashes.to_dict()["timestamp_discontinuities"] == 2
    assert hashes.duration_s == pytest.approx(11.9)


@pytest.fixture
def engine(repo: BankRepository, tmp_path: Path) -> Engine:
    return engine_with_known_video(repo, tmp_path, KNOWN, fps=FPS)


@pytest.fixture
def hidden_clip(tmp_path: Path) -> Path:
    """4 s of filler, then the banked pictures (3 s) with timestamps from 0 again."""
    first = segment(tmp_path / "a.ts", filler(4, 300))
    second = segment(tmp_path / "b.ts", shots(KNOWN, 1, FPS))
    return joined(tmp_path / "hidden.ts", [first, second])


def test_a_banked_sequence_after_a_reset_is_found_live(engine: Engine, hidden_clip: Path) -> None:
    events: list[dict[str, Any]] = []
    ended: list[str] = []
    lock = threading.Lock()

    def on_event(e: dict[str, Any]) -> None:
        with lock:
            events.append(e)

    monitor = Monitor(
        SampleAnalyzer(engine),
        on_event=on_event,
        per_stream_queue=64,
        actions={"end_stream": lambda r: ended.append(r.context.stream_id)},
    )
    monitor.add(Source(url=str(hidden_clip)), StreamContext("reset"))
    try:
        assert monitor.wait(timeout=120)
    finally:
        monitor.close()
    samples = [e for e in events if e["event"] == "sample"]
    matched = [e for e in samples if e["verdict"] == "match"]
    assert matched, [(e["stream_time_s"], e["verdict"]) for e in samples]
    assert 4.0 <= matched[0]["stream_time_s"] <= 8.0
    assert ended == ["reset"]
    (end,) = [e for e in events if e["event"] == "stream_end"]
    assert end["metrics"]["timestamp_discontinuities"] == 1


def test_a_banked_sequence_after_a_reset_is_found_in_an_upload(
    engine: Engine, hidden_clip: Path
) -> None:
    hashes = hash_video(hidden_clip)
    result = check_video(engine, hashes)
    assert result.verdict.matched
    shown = [f.timestamp_s for f in hashes.frames if f.timestamp_s >= 4.0]
    assert shown and shown[0] < 5.0


def test_crawling_timestamps_cannot_stretch_the_interval(tmp_path: Path) -> None:
    """300 frames 1 ms apart: 0.3 s by their timestamps, 10 s at a normal rate."""
    clip = segment(tmp_path / "crawl.ts", filler(30, 500), fps=1000, gop=30)
    assert frames_per_sample_cap(1.0) == 90
    samples, sampler = sample_file(clip)
    # Frames 0, 90, 180 and 270 (their timestamps: 0, 90, 180 and 270 ms).
    assert [s.stream_time_s for s in samples] == pytest.approx([0, 0.09, 0.18, 0.27])
    assert sampler.stats.samples_by_frame_count == 3
    hashes = hash_video(clip, fold_bits=None)
    assert hashes.frames_sampled == 4
    assert hashes.timestamp_discontinuities == 0


def test_repeated_timestamps_count_towards_an_uploads_duration_limit(tmp_path: Path) -> None:
    part = segment(tmp_path / "part.ts", filler(2, 700))
    looped = joined(tmp_path / "looped.ts", [part] * 5)  # 10 s, each 2 s at the same times
    with pytest.raises(VideoTooLongError, match="runs past 5 s"):
        hash_video(looped, max_duration_s=5)
    assert hash_video(looped, max_duration_s=20, fold_bits=None).frames_sampled == 10


def test_a_crawling_upload_is_bounded_by_its_frame_count(tmp_path: Path) -> None:
    clip = segment(tmp_path / "crawl.ts", filler(30, 800), fps=1000, gop=30)
    with pytest.raises(VideoTooLongError, match="more than 1 s of frames"):
        hash_video(clip, max_duration_s=1)


def test_a_jump_of_an_hour_is_not_waited_for_in_real_time(tmp_path: Path) -> None:
    first = segment(tmp_path / "a.ts", filler(2, 900))
    later = segment(tmp_path / "b.ts", filler(2, 910), start_s=3600.0)
    clip = joined(tmp_path / "jump.ts", [first, later])
    result: dict[str, Any] = {}

    def read() -> None:
        container = Source(url=str(clip)).open()
        sampler = Sampler(1.0)
        try:
            result["times"] = [
                s.stream_time_s
                for s in sampler.samples(container, realtime=True, speed=4.0, stop=stop)
            ]
            result["stats"] = sampler.stats
        finally:
            container.close()

    stop = threading.Event()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)
    stop.set()
    assert not reader.is_alive(), "the reader slept through the jump"
    assert result["times"] == pytest.approx([0, 1, 2, 3], abs=0.15)
    assert result["stats"].timestamp_discontinuities == 1


@pytest.mark.parametrize("container_format", ["mpegts", "mp4", "matroska", "flv"])
def test_ordinary_streams_count_no_discontinuity(tmp_path: Path, container_format: str) -> None:
    """B-frame pyramids reorder PTS; demuxers guess DTS: none of it is a discontinuity."""
    ext = {"mpegts": "ts", "matroska": "mkv"}.get(container_format, container_format)
    clip = segment(
        tmp_path / f"plain.{ext}",
        filler(6, 1000),
        container_format=container_format,
        preset="medium",
        gop=2 * FPS,
    )
    for kwargs in STRATEGIES:
        samples, sampler = sample_file(clip, **kwargs)
        assert sampler.stats.timestamp_discontinuities == 0, kwargs
        assert sampler.stats.samples_by_frame_count == 0, kwargs
        assert len(samples) == 6, (kwargs, [s.stream_time_s for s in samples])
    hashes = hash_video(clip, fold_bits=None)
    assert hashes.timestamp_discontinuities == 0
    assert hashes.frames_sampled == 6
