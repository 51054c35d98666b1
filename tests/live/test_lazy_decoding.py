"""Lazy decoding: a long GOP is decoded only as far as a due sample needs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from safestream.engine import Engine
from safestream.engine.video import add_video
from safestream.errors import InputError
from safestream.live import Monitor, SampleAnalyzer, Sampler, Source, StreamContext
from safestream.signals.video import hash_video
from safestream.store.banks import BankRepository
from video_support import assert_samples_exact, encode, known_frame, other_frame, sample_file, shots

FPS = 10


def encode_keyframes_at(
    path: Path, frames: Sequence[np.ndarray], keyframes: set[int], *, bframes: int = 0
) -> None:
    """H.264 in MPEG-TS with keyframes exactly at the given frame indices (and B-frames)."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "g": "100000",
            "bf": str(bframes),
            "x264-params": "scenecut=0",
        }
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pict_type = av.video.frame.PictureType.I if i in keyframes else 0
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def run(path: Path, strategy: str, fps: float = 1.0) -> tuple[list[Any], Sampler]:
    return sample_file(path, fps, strategy=strategy)


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        pts = [p.pts for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe]
        base = c.streams.video[0].time_base
    return [float((p - pts[0]) * base) for p in pts]


def test_two_second_gop_decodes_clearly_fewer_frames_than_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "gop2.ts"
    frames = shots([other_frame(1000 + i) for i in range(10)], 1, FPS)
    encode(path, frames, fps=FPS, gop=2 * FPS, container_format="mpegts")
    assert keyframe_times(path)[:3] == pytest.approx([0.0, 2.0, 4.0])
    every, s_all = run(path, "all")
    lazy, s_lazy = run(path, "lazy")
    assert s_all.stats.frames_decoded == 100
    # Per 2 s GOP: the keyframe plus the 10 frames up to the sample at +1 s.
    assert s_lazy.stats.frames_decoded <= 0.6 * s_all.stats.frames_decoded
    assert s_lazy.stats.packets_skipped >= 35
    assert s_lazy.stats.packets_decoded + s_lazy.stats.packets_skipped == s_lazy.stats.packets
    times = [s.stream_time_s for s in lazy]
    assert times == [s.stream_time_s for s in every]
    for k, t in enumerate(times):  # one sample per due time, within one interval of it
        assert k - 0.25 <= t < k + 1.0
    assert len(times) == 10
    for a, b in zip(lazy, every, strict=True):
        assert np.array_equal(a.rgb, b.rgb)  # the same pictures, not just the same times


@pytest.mark.parametrize("bframes", [0, 2])
def test_changing_gop_and_b_frames_lose_no_sample(tmp_path: Path, bframes: int) -> None:
    """GOPs of 2 s, 0.5 s, 3 s, 0.3 s and 1.2 s in one stream, with and without B-frames."""
    path = tmp_path / "mixed.ts"
    frames = shots([other_frame(1100 + i) for i in range(12)], 1, FPS)
    keys = {0, 20, 25, 30, 60, 63, 66, 69, 81, 93, 105}
    encode_keyframes_at(path, frames, keys, bframes=bframes)
    assert len(keyframe_times(path)) == len(keys)
    every, _ = run(path, "all", fps=2.0)
    lazy, sampler = run(path, "lazy", fps=2.0)
    assert len(lazy) == len(every) == 24
    # One sample per due time, each the very picture full decoding gives at its time
    # (with B-frames the I/P chain may take the P-picture after a due B-picture).
    assert_samples_exact(lazy, path, interval=0.5)
    assert sampler.stats.frames_decoded < 120
    assert sampler.stats.packets_skipped > 0 and sampler.stats.flushes > 0
    assert sampler.stats.bad_packets == 0


def test_keyframes_every_interval_decode_keyframes_only(tmp_path: Path) -> None:
    path = tmp_path / "gop1.ts"
    encode(path, shots([other_frame(1200 + i) for i in range(6)], 1, FPS), fps=FPS, gop=FPS)
    samples, sampler = run(path, "lazy")
    assert [s.keyframe for s in samples] == [True] * 6
    assert sampler.stats.frames_decoded == 6


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(InputError, match="unknown decoding strategy 'fast'"):
        Sampler(1.0, strategy="fast")


def test_banked_picture_in_a_long_gop_stream_is_found_in_time(
    repo: BankRepository, tmp_path: Path
) -> None:
    """A banked picture shown from X to Y in a 2 s GOP stream is matched at X..Y + 1 s."""
    known = [known_frame(i) for i in (51, 52)]
    clip = tmp_path / "known.mp4"
    encode(clip, shots(known, 1, FPS), fps=FPS)
    repo.create_bank("lazy-known", source="test")
    add_video(repo, "lazy-known", hash_video(clip), external_id="clip-lazy")
    filler = [other_frame(1300 + i) for i in range(7)]
    x, y = 5.0, 7.0  # shown from second 5 (mid-GOP: keyframes at 0, 2, 4, 6, ...) to 7
    stream = tmp_path / "stream.ts"
    encode(
        stream,
        shots(filler[:5] + known + filler[5:], 1, FPS),
        fps=FPS,
        gop=2 * FPS,
        container_format="mpegts",
    )
    events: list[dict[str, Any]] = []
    monitor = Monitor(SampleAnalyzer(Engine(repo)), on_event=events.append, per_stream_queue=64)
    try:
        monitor.add(Source(url=str(stream)), StreamContext("lazy"))
        assert monitor.wait(timeout=120)
    finally:
        monitor.close()
    matched = [e for e in events if e["event"] == "sample" and e["verdict"] == "match"]
    assert matched, [(e.get("stream_time_s"), e.get("verdict")) for e in events]
    assert x <= matched[0]["stream_time_s"] <= y + 1.0
    assert matched[0]["matches"][0]["bank"] == "lazy-known"


def test_intra_refresh_and_a_stream_joined_mid_way_lose_no_sample(tmp_path: Path) -> None:
    """Recovery points are flagged as keyframes but are not IDRs: never resume there."""
    from safestream.live.ingest import nal_length_size, resumable_keyframe

    src, cut = tmp_path / "ir.ts", tmp_path / "cut.ts"
    encode(
        src,
        shots([other_frame(1600 + i) for i in range(8)], 1, FPS),
        fps=FPS,
        container_format="mpegts",
        options={"x264-params": "intra-refresh=1:keyint=20"},
    )
    with av.open(str(src)) as c:
        cc = c.streams.video[0].codec_context
        size = nal_length_size(cc.name, cc.extradata)
        keys = [p for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe]
        assert len(keys) >= 3  # flagged: the first IDR and the recovery points
        assert [resumable_keyframe(p, cc.name, size) for p in keys] == [True] + [False] * (
            len(keys) - 1
        )
    # The same stream joined after its only IDR (as a viewer joining late would).
    with av.open(str(src)) as inp, av.open(str(cut), "w", format="mpegts") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        for i, packet in enumerate(inp.demux(s_in)):
            if packet.dts is None or i < 5:
                continue
            packet.stream = s_out
            out.mux(packet)
    for path in (src, cut):
        every, _ = run(path, "all")
        lazy, _ = run(path, "lazy")
        assert len(lazy) >= 5
        assert [s.stream_time_s for s in lazy] == [s.stream_time_s for s in every]


def test_resumable_keyframes_in_mp4_framing(tmp_path: Path) -> None:
    """MP4/FLV carry length-prefixed NAL units (AVCC): IDRs are still recognised."""
    path = tmp_path / "gop2.mp4"
    encode(path, shots([other_frame(1700 + i) for i in range(6)], 1, FPS), fps=FPS, gop=20)
    every, _ = run(path, "all")
    lazy, sampler = run(path, "lazy")
    assert [s.stream_time_s for s in lazy] == [s.stream_time_s for s in every]
    assert sampler.stats.packets_skipped >= 20 and sampler.stats.frames_decoded <= 36
