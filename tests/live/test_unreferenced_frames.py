"""Unreferenced pictures before a due sample are dropped undecoded; decoder settings."""

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
from safestream.live.ingest import hevc_top_sub_layer, unreferenced_packet
from safestream.signals.pdq import pdq_from_rgb
from safestream.signals.video import hash_video
from safestream.store.banks import BankRepository
from video_support import (
    assert_samples_exact,
    decoded_frames,
    encode,
    known_frame,
    other_frame,
    sample_file,
    shots,
)

FPS = 10


def moving(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The frames with a square moving across them (motion: real inter prediction)."""
    out = []
    for i, rgb in enumerate(frames):
        frame = rgb.copy()
        x = (i * 9) % (frame.shape[1] - 40)
        frame[100:140, x : x + 40] = (230, 40, 40)
        out.append(frame)
    return out


def encode_b(path: Path, frames: Sequence[np.ndarray], *, codec: str = "libx264") -> None:
    """2 s GOP, 3 B-frames, MPEG-TS: H.264 (libx264) or HEVC (libx265)."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream: Any = out.add_stream(codec, rate=FPS)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {
                "preset": "veryfast",
                "g": str(2 * FPS),
                "bf": "3",
                "sc_threshold": "0",  # keyframes every 2 s only, not at each new shot
            }
        else:
            stream.options = {
                "preset": "ultrafast",
                "x265-params": f"keyint={2 * FPS}:min-keyint={2 * FPS}:bframes=3:scenecut=0:log-level=error",
            }
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


FULL = {"strategy": "all", "skip_loop_filter": "none", "drop_unreferenced": False}


def bits(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def test_unreferenced_b_frames_are_dropped_and_samples_stay_in_time(tmp_path: Path) -> None:
    path = tmp_path / "b.ts"
    encode_b(path, moving(shots([other_frame(2000 + i) for i in range(8)], 1, FPS)))
    every, _ = sample_file(path, **FULL)
    # Dropping alone (the I/P chain and early drains skip more: tested in test_ip_chain).
    only_drop = {"ip_chain": False, "early_drain": False}
    kept, s_kept = sample_file(path, drop_unreferenced=False, skip_loop_filter="none", **only_drop)
    dropped, s_drop = sample_file(path, skip_loop_filter="none", **only_drop)
    assert s_kept.stats.unreferenced == 0
    assert s_drop.stats.unreferenced > 0
    assert s_drop.stats.packets_decoded + s_drop.stats.packets_skipped == s_drop.stats.packets
    assert s_drop.stats.frames_decoded == s_kept.stats.frames_decoded - s_drop.stats.unreferenced
    assert s_drop.stats.bad_packets == 0
    assert len(dropped) == len(kept) == len(every) == 8
    for k, s in enumerate(dropped):  # one sample per due time, within one interval of it
        assert k - 0.25 <= s.stream_time_s < k + 1.0
    # Only pictures before a due time are dropped: the same frames come out, bit-exact
    # (no loop filter skipped here), as decoding every frame gives.
    assert [s.stream_time_s for s in dropped] == [s.stream_time_s for s in every]
    for a, b in zip(dropped, every, strict=True):
        assert np.array_equal(a.rgb, b.rgb)


def test_default_loop_filter_skip_drifts_few_pdq_bits(tmp_path: Path) -> None:
    path = tmp_path / "lf.ts"
    encode_b(path, moving(shots([other_frame(2100 + i) for i in range(6)], 1, FPS)))
    frames = decoded_frames(path)
    for kwargs in ({"ip_chain": False, "early_drain": False}, {}):
        # lazy + drop + skip_loop_filter=noref, then the defaults (I/P chain too)
        fast, sampler = sample_file(path, **kwargs)
        assert sampler.stats.unreferenced > 0
        assert len(fast) == 6
        drift = [
            bits(pdq_from_rgb(s.rgb)[0], pdq_from_rgb(frames[round(s.stream_time_s, 4)])[0])
            for s in fast
        ]
        assert max(drift) <= 16, drift


def test_hevc_unreferenced_pictures_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "b.hevc.ts"
    encode_b(
        path, moving(shots([other_frame(2200 + i) for i in range(6)], 1, FPS)), codec="libx265"
    )
    every, _ = sample_file(path, **FULL)
    lazy, sampler = sample_file(path, skip_loop_filter="none")
    assert sampler.stats.unreferenced > 0
    assert sampler.stats.bad_packets == 0
    assert len(lazy) == len(every) == 6
    assert_samples_exact(lazy, path, interval=1.0)


def test_stream_joined_mid_gop_with_b_frames_loses_no_sample(tmp_path: Path) -> None:
    src, cut = tmp_path / "src.ts", tmp_path / "cut.ts"
    encode_b(src, moving(shots([other_frame(2300 + i) for i in range(7)], 1, FPS)))
    with av.open(str(src)) as inp, av.open(str(cut), "w", format="mpegts") as out:
        s_in = inp.streams.video[0]
        s_out: Any = out.add_stream_from_template(s_in)
        for i, packet in enumerate(inp.demux(s_in)):
            if packet.dts is None or i < 7:
                continue
            packet.stream = s_out
            out.mux(packet)
    every, _ = sample_file(cut, **FULL)
    lazy, sampler = sample_file(cut, skip_loop_filter="none")
    assert len(lazy) == len(every) >= 5
    assert sampler.stats.unreferenced > 0
    assert_samples_exact(lazy, cut, interval=1.0)


def test_unreferenced_packet_reads_nal_headers() -> None:
    sc = b"\0\0\0\1"
    aud, sei = sc + b"\x09\xf0", sc + b"\x06\x05\x00"
    b_nonref, p_ref = sc + b"\x01\x9e\x00", sc + b"\x41\x9a\x00"
    assert unreferenced_packet(aud + sei + b_nonref, "h264")
    assert not unreferenced_packet(aud + b_nonref + p_ref, "h264")  # one slice referenced
    assert not unreferenced_packet(aud + sei, "h264")  # no picture at all
    assert not unreferenced_packet(sc + b"\x65\x88", "h264")  # IDR
    # Length-prefixed (AVCC) framing, 4-byte lengths.
    assert unreferenced_packet(b"\0\0\0\3\x01\x9e\x00", "h264", 4)
    assert not unreferenced_packet(b"\0\0\0\3\x21\x9e\x00", "h264", 4)
    # HEVC: TRAIL_N (type 0) in the top sub-layer only; TRAIL_R (1) never.
    trail_n, trail_r = sc + b"\x00\x01\xaf", sc + b"\x02\x01\xaf"
    assert unreferenced_packet(trail_n, "hevc", hevc_top=0)
    assert not unreferenced_packet(trail_n, "hevc", hevc_top=None)  # unknown: keep
    assert not unreferenced_packet(trail_n, "hevc", hevc_top=1)  # a higher layer may use it
    assert not unreferenced_packet(trail_r, "hevc", hevc_top=0)
    assert not unreferenced_packet(b_nonref, "vp9")


def test_hevc_top_sub_layer_from_extradata() -> None:
    sps = b"\0\0\0\1" + b"\x42\x01" + bytes([0x01 | (2 << 1)]) + b"\x01"
    assert hevc_top_sub_layer(sps) == 2
    hvcc = bytearray(23)
    hvcc[0], hvcc[21] = 1, (3 << 3) | 3  # 3 temporal layers, 4-byte lengths
    assert hevc_top_sub_layer(bytes(hvcc)) == 2
    hvcc[21] = 3  # number of layers unknown, and no SPS
    assert hevc_top_sub_layer(bytes(hvcc)) is None
    # ... then the SPS in the parameter set arrays says (a VPS array first).
    vps, sps_nal = b"\x40\x01\x0c\x01", sps[4:]
    hvcc[22] = 2
    arrays = bytes([32, 0, 1, 0, len(vps)]) + vps + bytes([33, 0, 1, 0, len(sps_nal)]) + sps_nal
    assert hevc_top_sub_layer(bytes(hvcc) + arrays) == 2
    assert hevc_top_sub_layer(None) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"skip_loop_filter": "fast"}, "unknown skip_loop_filter 'fast'"),
        ({"decoder_threads": -1}, "decoder_threads must be 0"),
        ({"decoder_threads": 65}, "decoder_threads must be 0"),
        ({"decoder_threads": True}, "decoder_threads must be an integer"),
    ],
)
def test_bad_decoder_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Sampler(1.0, **kwargs)
    with pytest.raises(InputError, match=message):
        Monitor(SampleAnalyzer(None), **kwargs)


@pytest.mark.parametrize("skip_loop_filter", ["noref", "all"])
def test_banked_picture_in_a_b_frame_stream_is_found_in_time(
    repo: BankRepository, tmp_path: Path, skip_loop_filter: str
) -> None:
    """Shown from X to Y in a 2 s GOP stream with B-frames: matched at X..Y + 1 s."""
    known = [known_frame(i) for i in (61, 62)]
    clip = tmp_path / "known.mp4"
    encode(clip, shots(known, 1, FPS), fps=FPS)
    repo.create_bank("b-known", source="test")
    add_video(repo, "b-known", hash_video(clip), external_id="clip-b")
    filler = [other_frame(2400 + i) for i in range(7)]
    x, y = 5.0, 7.0
    stream = tmp_path / "stream.ts"
    encode_b(stream, shots(filler[:5] + known + filler[5:], 1, FPS))
    events: list[dict[str, Any]] = []
    monitor = Monitor(
        SampleAnalyzer(Engine(repo)),
        on_event=events.append,
        per_stream_queue=64,
        skip_loop_filter=skip_loop_filter,
    )
    try:
        monitor.add(Source(url=str(stream)), StreamContext("b"))
        assert monitor.wait(timeout=120)
        metrics = monitor.streams()[0]["metrics"]
    finally:
        monitor.close()
    assert metrics["packets_unreferenced"] > 0
    matched = [e for e in events if e["event"] == "sample" and e["verdict"] == "match"]
    assert matched, [(e.get("stream_time_s"), e.get("verdict")) for e in events]
    assert x <= matched[0]["stream_time_s"] <= y + 1.0
    assert matched[0]["matches"][0]["bank"] == "b-known"
