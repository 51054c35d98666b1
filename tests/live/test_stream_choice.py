"""A live source with several video streams: every one is sampled (by default), the one
players pick first; ``video_streams="preferred"`` samples that one only, not a decoy."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ffmpeg_support import Recorder
from safestream.engine import Engine
from safestream.errors import ConflictError, InputError
from safestream.live import (
    Monitor,
    SampleAnalyzer,
    Sampler,
    Source,
    SourceSampler,
    StreamContext,
)
from safestream.signals.pdq import pdq_from_rgb
from safestream.store.banks import BankRepository
from video_support import encode_tracks, engine_with_known_video, known_frame, other_frame, shots

FPS = 10
KNOWN = [known_frame(i) for i in (41, 42, 43)]
#: The banked sequence is shown from second X to second Y of the hidden stream.
X, Y = 3.0, 6.0


def test_the_largest_video_programme_is_sampled_not_the_first(tmp_path: Path) -> None:
    decoy = [np.full((64, 64, 3), 90, np.uint8)] * (3 * FPS)
    real = shots([known_frame(i) for i in (81, 82, 83)], 1, FPS)
    path = encode_tracks(
        tmp_path / "two.ts", decoy, real, fps=FPS, container_format="mpegts", preset="veryfast"
    )
    container = Source(url=str(path)).open()
    sampler = Sampler(1.0)
    try:
        samples = list(sampler.samples(container, stop=threading.Event()))
        assert sampler.stream_index == container.streams.video[1].index
    finally:
        container.close()
    assert [s.rgb.shape for s in samples] == [(240, 320, 3)] * 3
    assert {s.stream_index for s in samples} == {sampler.stream_index}
    for sample, k in zip(samples, (81, 82, 83), strict=True):
        distance = bin(int(sample.pdq()[0], 16) ^ int(pdq_from_rgb(known_frame(k))[0], 16))
        assert distance.count("1") <= 16


def two_streams(tmp_path: Path, *, hidden_known: bool = True) -> Path:
    """Stream 0 (flagged default: what players show) benign; stream 1 shows the banked
    sequence from X to Y when ``hidden_known``."""
    shown = shots([other_frame(900 + i) for i in range(9)], 1, FPS)
    middle = KNOWN if hidden_known else [other_frame(950 + i) for i in range(3)]
    hidden = shots([other_frame(960 + i) for i in range(3)] + middle + [other_frame(970)], 1, FPS)
    return encode_tracks(
        tmp_path / "two.ts",
        shown,
        hidden,
        fps=FPS,
        default=0,
        container_format="mpegts",
        preset="veryfast",  # B-frames: the I/P chain runs in both streams
    )


def alone(path: Path, index: int) -> list[tuple[float, str]]:
    container = Source(url=str(path)).open()
    try:
        stream = next(s for s in container.streams.video if s.index == index)
        return [
            (s.stream_time_s, s.pdq()[0]) for s in Sampler(1.0).samples(container, stream=stream)
        ]
    finally:
        container.close()


def test_every_video_stream_is_sampled_as_it_would_be_alone(tmp_path: Path) -> None:
    path = two_streams(tmp_path)
    container = Source(url=str(path)).open()
    source = SourceSampler(lambda: Sampler(1.0))
    try:
        samples = list(source.samples(container, stop=threading.Event()))
        indexes = [s.index for s in container.streams.video]
    finally:
        container.close()
    assert [s.stream_index for s in source.samplers] == indexes  # the default-flagged first
    by_stream: dict[int, list[tuple[float, str]]] = {i: [] for i in indexes}
    for sample in samples:
        by_stream[sample.stream_index].append((sample.stream_time_s, sample.pdq()[0]))
    for index in indexes:
        assert by_stream[index] == alone(path, index)
    # 9 s and 7 s at 1 sample/s.
    assert [len(by_stream[i]) for i in indexes] == [9, 7]
    # The counters are the two samplers' together.
    assert source.stats.samples == 16
    assert source.stats.frames_decoded == sum(s.stats.frames_decoded for s in source.samplers)
    assert source.stats.b_references_skipped > 0  # the chain ran


def run_monitor(
    repo: BankRepository, tmp_path: Path, sources: dict[str, Path], **kw: Any
) -> tuple[Recorder, dict[str, dict[str, Any]]]:
    """Events and actions, and each source's ``stream_end`` event."""
    try:
        engine = engine_with_known_video(repo, tmp_path, KNOWN)
    except ConflictError:  # banked by an earlier run of the same test
        engine = Engine(repo)
    rec = Recorder()
    callbacks = {a: rec.action for a in ("end_stream", "open_case", "obscure", "warn")}
    monitor = Monitor(
        SampleAnalyzer(engine), on_event=rec.event, actions=callbacks, per_stream_queue=64, **kw
    )
    try:
        for name, path in sources.items():
            monitor.add(Source(url=str(path)), StreamContext(name))
        assert monitor.wait(timeout=120)
    finally:
        monitor.close()
    return rec, {name: rec.of(name, "stream_end")[0] for name in sources}


def test_a_banked_picture_in_a_stream_players_do_not_pick_is_found(
    repo: BankRepository, tmp_path: Path
) -> None:
    rec, listing = run_monitor(repo, tmp_path, {"two": two_streams(tmp_path)})
    assert listing["two"]["ended_by"] == "end_stream"
    assert listing["two"]["metrics"]["video_streams"] == 2
    matched = [e for e in rec.of("two", "sample") if e["verdict"] == "match"]
    assert matched
    first = matched[0]
    assert first["stream_index"] == 1  # the hidden stream (container index 1)
    assert X <= first["stream_time_s"] <= Y + 1.0
    assert first["actions"] == ["end_stream", "open_case"]
    assert len([r for r in rec.requests if r.action == "end_stream"]) == 1
    case = next(r for r in rec.requests if r.action == "open_case")
    assert case.frame_streams == (1,) and case.to_dict()["sample_streams"] == [1]
    # Samples of both streams were analysed before the match.
    assert {e["stream_index"] for e in rec.of("two", "sample")} == {0, 1}


def test_preferred_samples_only_the_stream_players_pick(
    repo: BankRepository, tmp_path: Path
) -> None:
    rec, listing = run_monitor(
        repo, tmp_path, {"two": two_streams(tmp_path)}, video_streams="preferred"
    )
    assert listing["two"]["ended_by"] == "eof"
    assert listing["two"]["metrics"]["video_streams"] == 1
    samples = rec.of("two", "sample")
    assert len(samples) == 9 and {e["stream_index"] for e in samples} == {0}
    assert not [e for e in samples if e["verdict"] != "no_match"]
    assert not rec.requests


def test_a_source_with_too_many_video_streams_ends_with_an_error(
    repo: BankRepository, tmp_path: Path
) -> None:
    from safestream.live.ingest import MAX_LIVE_VIDEO_STREAMS

    n = MAX_LIVE_VIDEO_STREAMS + 1
    tiny = [[np.full((48, 64, 3), 25 * k, np.uint8)] * (2 * FPS) for k in range(n)]
    many = encode_tracks(tmp_path / "many.ts", *tiny, fps=FPS, container_format="mpegts")
    plain = encode_tracks(
        tmp_path / "one.ts", shots([other_frame(990)], 3, FPS), fps=FPS, container_format="mpegts"
    )
    rec, listing = run_monitor(repo, tmp_path, {"many": many, "one": plain})
    (error,) = rec.of("many", "error")
    assert f"{n} video streams; at most {n - 1} are monitored" in error["message"]
    assert "video_streams='preferred'" in error["message"]
    assert listing["many"]["ended_by"] == "error"
    assert not rec.of("many", "sample")
    # The other source is unaffected; a larger limit takes them all.
    assert listing["one"]["ended_by"] == "eof" and len(rec.of("one", "sample")) == 3
    rec, listing = run_monitor(repo, tmp_path, {"many": many}, max_video_streams=n)
    assert listing["many"]["ended_by"] == "eof"
    assert {e["stream_index"] for e in rec.of("many", "sample")} == set(range(n))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"video_streams": "first"}, "unknown video_streams 'first'; known: all, preferred"),
        ({"max_video_streams": 0}, "max_video_streams must be 1 to 64, got 0"),
        ({"max_video_streams": True}, "max_video_streams must be 1 to 64, got True"),
    ],
)
def test_bad_video_stream_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        SourceSampler(Sampler, **kwargs)
    with pytest.raises(InputError, match=message):
        Monitor(SampleAnalyzer(None), **kwargs)


def test_a_stream_that_starts_later_has_later_times(tmp_path: Path) -> None:
    """All of a source's video streams are on one timeline: a programme that starts 3 s
    after the first has samples from 3 s on, the frames it gives alone, 3 s later."""
    from fractions import Fraction

    import av

    path = tmp_path / "late.ts"
    first = shots([other_frame(1000 + i) for i in range(9)], 1, FPS)
    late = shots([other_frame(1100 + i) for i in range(9)], 1, FPS)
    with av.open(str(path), "w", format="mpegts") as out:
        streams = []
        for _ in range(2):
            s = out.add_stream("libx264", rate=FPS)
            s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
            s.options = {"preset": "veryfast", "g": str(FPS)}
            streams.append(s)
        for i in range(9 * FPS):
            for k, (s, frames) in enumerate(zip(streams, (first, late), strict=True)):
                if k == 1 and i < 3 * FPS:
                    continue  # the second programme starts at 3 s
                frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, FPS)
                for packet in s.encode(frame):
                    out.mux(packet)
        for s in streams:
            for packet in s.encode():
                out.mux(packet)
    container = Source(url=str(path)).open()
    source = SourceSampler(lambda: Sampler(1.0))
    try:
        got = [(s.stream_index, s.stream_time_s, s.pdq()[0]) for s in source.samples(container)]
    finally:
        container.close()
    assert [(t, h) for i, t, h in got if i == 0] == alone(path, 0)
    later = [(t, h) for i, t, h in got if i == 1]
    on_its_own = alone(path, 1)
    assert len(later) == len(on_its_own) == 6
    assert [h for _, h in later] == [h for _, h in on_its_own]
    assert [round(t - 3.0, 6) for t, _ in later] == [round(t, 6) for t, _ in on_its_own]
