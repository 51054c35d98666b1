"""Decoding live streams on a hardware device (``Source(hwaccel=...)``, ``--hwaccel``).

This machine has no GPU: opening a source with ``cuda`` must fail with a clear error (no
silent fallback to the CPU). Where a device is there, the samples must be those of
software decoding.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from safestream.errors import InputError
from safestream.live import Monitor, SampleAnalyzer, Sampler, Source, StreamContext, StreamError
from video_support import encode, known_frame, other_frame, shots

FPS = 10


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.ts"
    pictures = [other_frame(700 + i) for i in range(3)] + [known_frame(7)]
    encode(path, shots(pictures, 1, FPS), fps=FPS, container_format="mpegts", gop=2 * FPS)
    return path


def test_a_device_type_ffmpeg_lacks_is_refused_with_those_it_has(clip: Path) -> None:
    from av.codec.hwaccel import hwdevices_available

    with pytest.raises(StreamError) as err:
        Source(url=str(clip), hwaccel="warp-drive").open()
    message = str(err.value)
    assert "hardware decoding 'warp-drive' is not in this FFmpeg build" in message
    assert all(kind in message for kind in hwdevices_available())


@pytest.mark.parametrize("bad", ["", "  ", 7])
def test_a_blank_or_odd_device_type_is_refused_at_once(clip: Path, bad: object) -> None:
    with pytest.raises(InputError, match="hwaccel must be a device type such as 'cuda'"):
        Source(url=str(clip), hwaccel=bad)  # type: ignore[arg-type]


def samples(source: Source) -> list[tuple[float, str]]:
    container = source.open()
    try:
        return [
            (s.stream_time_s, s.pdq()[0])
            for s in Sampler(1.0).samples(container, stop=threading.Event())
        ]
    finally:
        container.close()


def test_cuda_decodes_like_the_cpu_or_fails_clearly(clip: Path) -> None:
    from av.codec.hwaccel import hwdevices_available

    assert "cuda" in hwdevices_available()  # the PyAV wheel's FFmpeg is built with it
    software = samples(Source(url=str(clip)))
    try:
        hardware = samples(Source(url=str(clip), hwaccel="cuda"))
    except StreamError as exc:  # no GPU or driver here: said so, nothing decoded
        assert "cannot open with hardware decoding (cuda)" in str(exc)
        assert "without --hwaccel it decodes on the CPU" in str(exc)
        return
    assert [t for t, _ in hardware] == [t for t, _ in software]
    for (_, a), (_, b) in zip(hardware, software, strict=True):
        assert bin(int(a, 16) ^ int(b, 16)).count("1") <= 4


def test_a_source_whose_device_fails_ends_alone(clip: Path) -> None:
    events: list[dict[str, object]] = []
    monitor = Monitor(SampleAnalyzer(None), on_event=events.append, per_stream_queue=64)
    try:
        monitor.add(Source(url=str(clip), hwaccel="warp-drive"), StreamContext("hw"))
        monitor.add(Source(url=str(clip)), StreamContext("cpu"))
        assert monitor.wait(timeout=60)
    finally:
        monitor.close()
    (error,) = [e for e in events if e["event"] == "error"]
    assert error["stream_id"] == "hw" and "warp-drive" in str(error["message"])
    cpu = [e for e in events if e["event"] == "sample" and e["stream_id"] == "cpu"]
    assert len(cpu) == 4
