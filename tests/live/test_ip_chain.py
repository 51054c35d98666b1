"""The I/P chain: referenced B-pictures skipped when the headers show nothing uses them.

Each encoder setting below is checked against full decoding: one sample per interval,
each bit-identical to the frame full decoding gives at its time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from safestream.live.h264 import (
    SLICE_B,
    SLICE_I,
    SLICE_P,
    BitReader,
    ParameterSets,
    Pps,
    RefTracker,
    SliceHeader,
    Sps,
    Unsupported,
    parse_slice_header,
    unescape,
)
from safestream.live.ingest import _nal_starts, nal_length_size
from safestream.signals.synthetic import photo_like
from video_support import assert_samples_exact, encode, other_frame, sample_file, shots

FPS, SECONDS = 10, 6
WIDTH, HEIGHT = 320, 240


def panned(seconds: int = SECONDS) -> list[np.ndarray]:
    """Slowly panned photo-like pictures with a moving square (real inter prediction)."""
    backgrounds = [photo_like(900 + i, WIDTH * 2, HEIGHT * 2) for i in range(3)]
    out = []
    for i in range(seconds * FPS):
        bg = backgrounds[(i // (2 * FPS + 3)) % len(backgrounds)]
        x, y = i % WIDTH, (i // 2) % HEIGHT
        frame = np.ascontiguousarray(bg[y : y + HEIGHT, x : x + WIDTH])
        sq = (i * 9) % (WIDTH - 40)
        frame[100:140, sq : sq + 40] = (230, 40, 40)
        out.append(frame)
    return out


def encode_x264(
    path: Path, options: dict[str, str], *, fmt: str = "mpegts", gop_s: int = 2
) -> None:
    with av.open(str(path), "w", format=fmt) as out:
        stream: Any = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"g": str(gop_s * FPS), "sc_threshold": "0", **options}
        for rgb in panned():
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


# (name, x264 options, container, whether P-pictures predict from I/P only)
SETTINGS = [
    ("veryfast-pyramid", {"preset": "veryfast"}, "mpegts", True),
    (
        "strict-pyramid",
        {"preset": "medium", "x264-params": "b-pyramid=strict:ref=1"},
        "mpegts",
        True,
    ),
    ("mbaff", {"preset": "veryfast", "x264-params": "interlaced=1"}, "mpegts", True),
    ("four-slices", {"preset": "veryfast", "x264-params": "slices=4"}, "mpegts", True),
    ("mp4-avcc", {"preset": "veryfast"}, "mp4", True),
    # Three references: P-pictures predict from B-pictures too, so the chain must give up.
    ("medium-3-refs", {"preset": "medium"}, "mpegts", False),
    ("weightp-6-refs", {"preset": "veryfast", "x264-params": "ref=6:weightp=2"}, "mpegts", False),
]


@pytest.mark.parametrize(
    ("name", "options", "fmt", "chain"), SETTINGS, ids=[s[0] for s in SETTINGS]
)
def test_samples_are_exact_with_and_without_the_chain(
    tmp_path: Path, name: str, options: dict[str, str], fmt: str, chain: bool
) -> None:
    path = tmp_path / f"{name}.{'mp4' if fmt == 'mp4' else 'ts'}"
    encode_x264(path, options, fmt=fmt)
    plain, s_plain = sample_file(path, ip_chain=False, skip_loop_filter="none")
    fast, s_fast = sample_file(path, skip_loop_filter="none")
    assert len(fast) == len(plain) == SECONDS
    assert_samples_exact(fast, path, interval=1.0)
    assert s_fast.stats.bad_packets == 0
    assert s_fast.stats.packets_decoded + s_fast.stats.packets_skipped == s_fast.stats.packets
    if chain:
        assert s_fast.stats.chain_fallbacks == 0, s_fast.stats.chain_fallback_reason
        assert s_fast.stats.b_references_skipped > 0
        assert s_fast.stats.frames_decoded < s_plain.stats.frames_decoded
    else:
        assert s_fast.stats.chain_fallbacks == 1
        assert s_fast.stats.chain_fallback_reason == "a P-picture references a skipped B-picture"
        assert s_fast.stats.packets_redecoded > 0  # the GOP was decoded again, whole


def test_chain_with_the_default_loop_filter_skip_is_still_exact(tmp_path: Path) -> None:
    """Samples are I/P pictures others reference: ``noref`` never touches them."""
    path = tmp_path / "noref.ts"
    encode_x264(path, {"preset": "veryfast"})
    samples, sampler = sample_file(path)  # the defaults
    assert sampler.stats.b_references_skipped > 0
    assert_samples_exact(samples, path, interval=1.0)


def test_one_second_gop_drains_early_and_decodes_one_picture_per_sample(tmp_path: Path) -> None:
    path = tmp_path / "gop1.ts"
    encode_x264(path, {"preset": "veryfast"}, gop_s=1)
    samples, sampler = sample_file(path)
    assert [s.keyframe for s in samples] == [True] * SECONDS
    assert_samples_exact(samples, path, interval=1.0)
    # The first GOP's length is not known yet: its keyframe waits for the reorder delay.
    assert sampler.stats.early_drains == SECONDS - 1
    assert sampler.stats.frames_decoded <= SECONDS + 3
    _, s_late = sample_file(path, early_drain=False)
    assert s_late.stats.frames_decoded > sampler.stats.frames_decoded


def test_b_frames_without_pyramid_need_no_chain(tmp_path: Path) -> None:
    """Unreferenced B-pictures only: nothing for the chain to add, nothing lost."""
    path = tmp_path / "nopyramid.ts"
    encode_x264(path, {"preset": "veryfast", "x264-params": "b-pyramid=none"})
    samples, sampler = sample_file(path, skip_loop_filter="none")
    assert sampler.stats.b_references_skipped == 0 and sampler.stats.chain_fallbacks == 0
    assert sampler.stats.unreferenced > 0
    assert_samples_exact(samples, path, interval=1.0)


def headers_of(path: Path) -> list[list[SliceHeader]]:
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        size = nal_length_size("h264", cc.extradata)
        params = ParameterSets()
        params.seed(cc.extradata, _nal_starts(cc.extradata or b"", size))
        out = []
        for p in c.demux(c.streams.video[0]):
            if p.size:
                data = bytes(p)
                out.append(params.picture(data, _nal_starts(data, size)))
    return out


def test_slice_headers_of_a_pyramid_stream(tmp_path: Path) -> None:
    path = tmp_path / "h.ts"
    encode_x264(path, {"preset": "veryfast"})
    pictures = headers_of(path)
    first = pictures[0][0]
    assert first.idr and first.slice_type == SLICE_I and first.frame_num == 0
    kinds = {(h[0].slice_type, h[0].nal_ref_idc > 0) for h in pictures}
    assert {(SLICE_I, True), (SLICE_P, True), (SLICE_B, True), (SLICE_B, False)} <= kinds
    # frame_num counts reference pictures, from the IDR; unreferenced ones don't add.
    tracker = RefTracker()
    for h in pictures:
        tracker.check_frame_num(h[0])
        tracker.add(h[0], True)
    assert first.sps.max_num_ref_frames >= 2 and first.sps.frame_mbs_only


def sps(max_refs: int = 4) -> Sps:
    return Sps(0, 1, False, 4, 0, 6, False, max_refs, True)


def hdr(
    frame_num: int,
    kind: int = SLICE_P,
    *,
    ref: int = 2,
    refs: int = 1,
    mods=(),
    mmco=None,
    idr=False,
) -> SliceHeader:  # type: ignore[no-untyped-def]
    return SliceHeader(5 if idr else 1, ref, kind, frame_num, refs, tuple(mods), mmco, sps())


def test_ref_tracker_default_order_modifications_and_gaps() -> None:
    real, dec = RefTracker(), RefTracker()
    real.add(hdr(0, SLICE_I, idr=True), True)
    dec.add(hdr(0, SLICE_I, idr=True), True)
    real.add(hdr(1), True)
    dec.add(hdr(1), True)
    b_ref = hdr(2, SLICE_B, mmco=(1,))  # marks frame_num 0 unused
    real.add(b_ref, False)
    dec.add(b_ref, False, gap=True)  # the decoder never sees that MMCO
    assert list(real.short) == [1, 2] and list(dec.short) == [0, 1, 2]
    # Default order: the most recent reference first (the skipped B-picture).
    assert dec.list0(hdr(3)) == [2]
    # x264's modification "abs_diff_pic_num_minus1 = 1" names frame_num 1, the P-picture.
    p = hdr(3, mods=[(0, 1)])
    assert real.list0(p) == dec.list0(p) == [1] and dec.short[1]
    # Two active references: the skipped one comes second.
    assert dec.list0(hdr(3, refs=2, mods=[(0, 1)])) == [1, 2]
    # Buffers that differ: the second default entry is 0 for the decoder only.
    assert real.list0(hdr(3, refs=3, mods=[(0, 1)])) == [1, 2]
    assert dec.list0(hdr(3, refs=3, mods=[(0, 1)])) == [1, 2, 0]
    with pytest.raises(Unsupported, match="not in the buffer"):
        real.list0(hdr(3, mods=[(0, 2)]))  # frame_num 0: gone
    with pytest.raises(Unsupported, match="frame_num gap"):
        real.check_frame_num(hdr(5))


def test_ref_tracker_sliding_window_and_wrap() -> None:
    t = RefTracker()
    t.add(hdr(0, SLICE_I, idr=True), True)
    for fn in range(1, 20):  # log2_max_frame_num 4: frame_num wraps at 16
        t.check_frame_num(hdr(fn % 16))
        t.add(hdr(fn % 16), True)
    assert list(t.short) == [0, 1, 2, 3]  # the four most recent: 16..19 wrapped
    assert t.list0(hdr(4, refs=4)) == [3, 2, 1, 0]


def test_bit_reader_and_emulation_prevention() -> None:
    assert unescape(b"\x00\x00\x03\x01\x00\x00\x03") == b"\x00\x00\x01\x00\x00"
    r = BitReader(bytes([0b10100110, 0b01000000]))
    assert [r.ue(), r.ue(), r.ue(), r.se()] == [0, 1, 2, 2]  # 1 010 011 00100 -> 2nd se(3)=2
    with pytest.raises(Unsupported):
        BitReader(b"\x00").ue()
    with pytest.raises(Unsupported):
        BitReader(b"\xff").u(9)


def test_malformed_headers_turn_the_chain_off_and_lose_nothing(tmp_path: Path) -> None:
    """A slice whose PPS never came, and truncated headers: Unsupported, never a crash."""
    with pytest.raises(Unsupported, match="PPS"):
        parse_slice_header(b"\x41\x9a\x00", {}, {})
    params = ParameterSets()
    with pytest.raises(Unsupported):
        params.read(b"\x67\x64")  # an SPS cut after its first byte
    pps = Pps(0, 0, False, 1, 1, False, 0, False)
    with pytest.raises(Unsupported, match="before its SPS"):
        parse_slice_header(b"\x41\x9a\x00", {}, {0: pps})
    # A stream whose extradata and in-band parameter sets are garbage.
    src, bad = tmp_path / "src.ts", tmp_path / "bad.ts"
    encode_x264(src, {"preset": "veryfast"})
    with av.open(str(src)) as inp, av.open(str(bad), "w", format="mpegts") as out:
        s_in = inp.streams.video[0]
        s_out: Any = out.add_stream_from_template(s_in)
        for packet in inp.demux(s_in):
            if packet.dts is None:
                continue
            data = bytes(packet)
            # Break each B-picture's slice header (the byte after the NAL header).
            i = data.find(b"\x00\x00\x01\x01")
            if i >= 0 and i + 5 < len(data):
                data = data[: i + 4] + b"\x00\x00\x00\x00" + data[i + 8 :]
            copy = av.Packet(data)
            copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
            copy.stream = s_out
            out.mux(copy)
    samples, sampler = sample_file(bad, skip_loop_filter="none")
    assert sampler.stats.chain_fallbacks >= 1
    assert sampler.stats.chain_fallback_reason
    assert len(samples) == SECONDS


def test_a_length_prefix_that_looks_like_a_start_code_is_read_as_a_length() -> None:
    """A 4-byte length of 256-511 begins 00 00 01: MP4/FLV packets must not be misread."""
    from safestream.live.ingest import unreferenced_packet

    nal = bytes([0x01, 0x9E]) + bytes(334)  # an unreferenced slice, 336 bytes
    data = len(nal).to_bytes(4, "big") + nal
    assert data.startswith(b"\0\0\1")
    assert unreferenced_packet(data, "h264", 4)
    assert list(_nal_starts(data, 4)) == [4]
    assert list(_nal_starts(b"\0\0\0\1\x41\x9a\x00\x55", 4)) == [4]  # Annex B stays Annex B


def _real_units(tmp_path: Path) -> list[bytes]:
    """Every NAL unit of a real pyramid stream (parameter sets and slices)."""
    path = tmp_path / "fuzz.ts"
    encode_x264(path, {"preset": "veryfast", "x264-params": "slices=2"})
    units = []
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            if p.size:
                data = bytes(p)
                starts = list(_nal_starts(data, 4))
                ends = [*[s - 3 for s in starts[1:]], len(data)]
                units += [data[s:e] for s, e in zip(starts, ends, strict=True)]
    return units


def test_hostile_headers_raise_unsupported_and_nothing_else(tmp_path: Path) -> None:
    """Mutated and random header bytes: Unsupported or a parse, never another error,
    and no field the standard bounds is taken unbounded (nothing sized by the stream)."""
    import random

    rng = random.Random(5)
    units = _real_units(tmp_path)
    params = ParameterSets()
    tracker = RefTracker()
    outcomes = {"parsed": 0, "unsupported": 0}
    for i in range(3000):
        unit = bytearray(rng.choice(units)[:80])
        for _ in range(rng.randint(1, 6)):
            unit[rng.randrange(len(unit))] = rng.randrange(256)
        if i % 10 == 0:
            unit = bytearray([rng.choice([0x67, 0x68, 0x41, 0x65, 0x01])]) + bytearray(
                rng.randbytes(rng.randint(0, 40))
            )
        data = b"\0\0\0\1" + bytes(unit)
        try:
            for h in params.picture(data, _nal_starts(data, 4)):
                assert h.sps.log2_max_frame_num <= 16 and h.num_ref_idx_l0 <= 32
                tracker.check_frame_num(h)
                if h.slice_type == SLICE_P:
                    tracker.list0(h)
                tracker.add(h, rng.random() < 0.5, gap=rng.random() < 0.5)
            outcomes["parsed"] += 1
        except Unsupported:
            outcomes["unsupported"] += 1
            tracker.reset()
    assert outcomes["parsed"] > 100 and outcomes["unsupported"] > 100, outcomes
    assert len(tracker.short) <= 16


def test_a_due_packet_that_gives_no_frame_does_not_loop(tmp_path: Path) -> None:
    """A slice-less packet (an SEI alone) timed at a due sample, in a GOP whose end the
    sampler would drain early: one drain, then decoding goes on; every sample comes."""
    import threading

    src, bad = tmp_path / "src.mkv", tmp_path / "bad.mkv"
    frames = shots([other_frame(i) for i in range(700, 706)], 1, 10)
    encode(src, frames, fps=10, gop=20, container_format="matroska")
    with av.open(str(src)) as inp, av.open(str(bad), "w", format="matroska") as out:
        s_in = inp.streams.video[0]
        s_out: Any = out.add_stream_from_template(s_in)
        base = s_in.time_base
        assert base is not None
        for packet in inp.demux(s_in):
            if packet.dts is None or packet.pts is None:
                continue
            if abs(float(packet.pts * base) - 3.0) < 1e-6:  # due at 3 s, next GOP at 4 s
                sei = b"\x06\x05\x01\x00\x80"
                extra = av.Packet(len(sei).to_bytes(4, "big") + sei)
                extra.pts, extra.dts = packet.pts + int(0.05 / base), packet.dts - 1
                extra.time_base, extra.stream = base, s_out
                out.mux(extra)
            packet.stream = s_out
            out.mux(packet)
    result: dict[str, Any] = {}

    def sample() -> None:
        result["samples"], result["sampler"] = sample_file(bad)

    worker = threading.Thread(target=sample, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the sampler kept decoding the same GOP"
    assert [round(s.stream_time_s, 3) for s in result["samples"]] == [0, 1, 2, 3, 4, 5]
    assert result["sampler"].stats.early_drains >= 1


def test_corrupted_and_dropped_packets_never_crash_or_hang_the_chain(tmp_path: Path) -> None:
    """Random bytes in slice headers, dropped packets: samples or a StreamError, never
    another exception or a hang, and as many samples as without the chain."""
    import random
    import threading

    from safestream.live.ingest import StreamError

    src = tmp_path / "src.mkv"
    encode_x264(src, {"preset": "veryfast"}, fmt="matroska")
    with av.open(str(src)) as c:
        packets = [
            (bytes(p), p.pts, p.dts, p.is_keyframe)
            for p in c.demux(c.streams.video[0])
            if p.dts is not None
        ]
    for seed in range(10):
        rng = random.Random(seed)
        path = tmp_path / f"fuzz{seed}.mkv"
        with av.open(str(src)) as inp, av.open(str(path), "w", format="matroska") as out:
            s_in = inp.streams.video[0]
            s_out: Any = out.add_stream_from_template(s_in)
            for data, pts, dts, key in packets:
                if rng.random() < 0.05:
                    continue  # a lost packet
                raw = bytearray(data)
                if rng.random() < 0.3:
                    for _ in range(rng.randint(1, 8)):
                        raw[rng.randrange(4, min(len(raw), 60))] = rng.randrange(256)
                copy = av.Packet(bytes(raw))
                copy.pts, copy.dts, copy.time_base, copy.stream = pts, dts, s_in.time_base, s_out
                copy.is_keyframe = key
                out.mux(copy)
        counts: dict[bool, int] = {}
        for chain in (True, False):
            result: dict[str, Any] = {}

            def sample(
                chain: bool = chain, result: dict[str, Any] = result, path: Path = path
            ) -> None:
                try:
                    samples, _ = sample_file(path, ip_chain=chain, early_drain=chain)
                    result["n"] = len(samples)
                except StreamError:
                    result["n"] = -1
                except Exception as exc:
                    result["crash"] = repr(exc)

            worker = threading.Thread(target=sample, daemon=True)
            worker.start()
            worker.join(timeout=60)
            assert not worker.is_alive(), f"seed {seed}: the sampler hangs"
            assert "crash" not in result, (seed, result)
            counts[chain] = result["n"]
        assert counts[True] == counts[False], (seed, counts)
