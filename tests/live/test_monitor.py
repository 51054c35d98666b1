"""The live monitor over MPEG-TS pipes carrying synthetic video (PyAV encodes them)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
import pytest

from ffmpeg_support import Recorder
from safestream.engine import Engine
from safestream.engine.video import add_video
from safestream.errors import InputError
from safestream.live import (
    Monitor,
    SampleAnalyzer,
    Sampler,
    Source,
    StreamContext,
    TemporalPolicy,
    WorkerPool,
)
from safestream.signals.video import hash_video
from safestream.store.banks import BankRepository
from video_support import encode, known_frame, other_frame, shots

FPS = 10
KNOWN = [known_frame(i) for i in (41, 42, 43)]
#: The banked sequence is shown from second X to second Y of the test stream.
X, Y = 4.0, 7.0


def stream_frames(with_known: bool, seed: int = 300) -> list[np.ndarray]:
    filler = [other_frame(seed + i) for i in range(7)]
    middle = KNOWN if with_known else filler[4:7]
    return shots(filler[:4] + middle + filler[4:6], 1, FPS)


class Pipe:
    """A writer thread that encodes frames as MPEG-TS into an OS pipe, paced."""

    def __init__(self, frames: list[np.ndarray], *, pace_s: float = 0.01, gop: int = FPS) -> None:
        r, w = os.pipe()
        self.reader: IO[bytes] = os.fdopen(r, "rb")
        self._writer: IO[bytes] = os.fdopen(w, "wb")
        self.frames, self.pace_s, self.gop = frames, pace_s, gop
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _paced(self) -> Iterator[np.ndarray]:
        for f in self.frames:
            time.sleep(self.pace_s)
            yield f

    def _run(self) -> None:
        try:
            encode(self._writer, self._paced(), fps=FPS, container_format="mpegts", gop=self.gop)
        except (OSError, ValueError, av.error.FFmpegError):
            pass  # the monitor ended the stream and closed its end
        except BaseException as exc:
            self.error = exc
        finally:
            with contextlib.suppress(OSError):
                self._writer.close()

    def close(self) -> None:
        self.reader.close()  # a writer blocked on a full pipe gets EPIPE and ends
        self.thread.join(timeout=30)


@pytest.fixture
def engine(repo: BankRepository, tmp_path: Path) -> Engine:
    clip = tmp_path / "known.mp4"
    encode(clip, shots(KNOWN, 1, FPS), fps=FPS)
    repo.create_bank("known-video", source="test")
    add_video(repo, "known-video", hash_video(clip), external_id="clip-1")
    return Engine(repo)


def _monitor(engine: Engine, rec: Recorder, **kw: Any) -> Monitor:
    callbacks = {a: rec.action for a in ("end_stream", "open_case", "obscure", "warn")}
    kw.setdefault("per_stream_queue", 64)  # this test is about detection, not overload
    return Monitor(SampleAnalyzer(engine), on_event=rec.event, actions=callbacks, **kw)


def test_banked_sequence_on_a_pipe_is_detected_and_ends_only_that_stream(engine: Engine) -> None:
    rec = Recorder()
    monitor = _monitor(engine, rec)
    bad, good = Pipe(stream_frames(True)), Pipe(stream_frames(False, seed=500))
    ctx = StreamContext("s-bad", account_id="acct-9", ip_address="198.51.100.7", source_port=51234)
    monitor.add(Source(fileobj=bad.reader, format="mpegts"), ctx)
    monitor.add(Source(fileobj=good.reader, format="mpegts"), StreamContext("s-good"))
    try:
        assert monitor.wait(timeout=120)
        listing = {s["stream_id"]: s for s in monitor.streams()}
    finally:
        monitor.close()
        bad.close()
        good.close()
    assert bad.error is None and good.error is None
    assert listing["s-bad"]["ended_by"] == "end_stream" and not listing["s-bad"]["running"]
    assert listing["s-good"]["metrics"]["results"] == 9
    assert listing["s-good"]["metrics"]["dropped"] == 0
    assert listing["s-good"]["metrics"]["latency_p95_ms"] is not None

    matched = [e for e in rec.of("s-bad", "sample") if e["verdict"] == "match"]
    assert matched, [
        (e["stream_time_s"], e["quality"], e["verdict"]) for e in rec.of("s-bad", "sample")
    ]
    first = matched[0]
    assert X <= first["stream_time_s"] <= Y + 1.0
    assert first["matches"][0]["bank"] == "known-video"
    assert first["actions"] == ["end_stream", "open_case"]
    ends = [r for r in rec.requests if r.action == "end_stream"]
    assert len(ends) == 1
    case = next(r for r in rec.requests if r.action == "open_case")
    assert case.context.ip_address == "198.51.100.7" and case.context.source_port == 51234
    assert case.context.account_id == "acct-9"
    assert case.sample_times_s == (first["stream_time_s"],)
    assert case.evidence_png and case.evidence_png[0].startswith(b"\x89PNG")
    (end,) = rec.of("s-bad", "stream_end")
    assert end["ended_by"] == "end_stream"
    print(
        f"\ndetection: stream time {first['stream_time_s']:.2f} s (shown from {X} s), "
        f"frame-arrival-to-verdict latency {first['latency_ms']:.1f} ms"
    )

    assert not [e for e in rec.of("s-good", "sample") if e["verdict"] != "no_match"]
    assert not [r for r in rec.requests if r.context.stream_id == "s-good"]
    (good_end,) = rec.of("s-good", "stream_end")
    assert good_end["ended_by"] == "eof"
    assert good_end["metrics"]["samples"] == 9  # 9 s at 1 sample/s
    assert not rec.of("s-good", "error")


def test_corrupt_stream_ends_with_an_error_and_others_carry_on(engine: Engine) -> None:
    rec = Recorder()
    monitor = _monitor(engine, rec)
    r, w = os.pipe()
    garbage = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()

    def write() -> None:
        with os.fdopen(w, "wb") as fh, contextlib.suppress(OSError):
            fh.write(garbage)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    good = Pipe(stream_frames(False, seed=700))
    with os.fdopen(r, "rb") as reader:
        monitor.add(Source(fileobj=reader, format="mpegts"), StreamContext("garbage"))
        monitor.add(Source(fileobj=good.reader, format="mpegts"), StreamContext("ok"))
        try:
            assert monitor.wait(timeout=120)
        finally:
            monitor.close()
            good.close()
            t.join()
    (end,) = rec.of("garbage", "stream_end")
    assert end["ended_by"] in ("error", "eof")
    assert rec.of("ok", "stream_end")[0]["metrics"]["samples"] == 9
    not_a_file = _monitor(engine, Recorder())
    try:
        s = not_a_file.add(Source(url="/nonexistent/video.ts"), StreamContext("missing"))
        assert not_a_file.wait(timeout=30)
        assert s.error and "cannot open" in s.error
    finally:
        not_a_file.close()


def _sample_file(path: Path, gop: int, seconds: int = 6) -> None:
    encode(path, shots([other_frame(900 + i) for i in range(seconds)], 1, FPS), fps=FPS, gop=gop)


@pytest.mark.parametrize("gop", [FPS, 5 * FPS])
def test_sampler_decodes_keyframes_when_they_are_close_enough(tmp_path: Path, gop: int) -> None:
    path = tmp_path / "s.ts"
    _sample_file(path, gop)
    source = Source(url=str(path))
    container = source.open()
    sampler = Sampler(1.0, strategy="keyframe")
    try:
        times = [s.stream_time_s for s in sampler.samples(container)]
    finally:
        container.close()
    assert times == pytest.approx([0, 1, 2, 3, 4, 5], abs=0.3)
    assert sampler.stats.packets == 60
    if gop == FPS:  # keyframes every second: only they are decoded (after the GOP is known)
        assert sampler.stats.keyframe_mode
        assert sampler.stats.frames_decoded <= 2 * FPS + 6
    else:
        assert not sampler.stats.keyframe_mode
        assert sampler.stats.frames_decoded == 60


def test_file_played_at_real_time(tmp_path: Path) -> None:
    path = tmp_path / "s.mp4"
    _sample_file(path, FPS, seconds=3)
    source = Source.parse(str(path))
    assert source.realtime
    source.speed = 4.0
    container = source.open()
    sampler = Sampler(2.0)
    start = time.monotonic()
    try:
        samples = list(sampler.samples(container, realtime=True, speed=4.0))
    finally:
        container.close()
    assert len(samples) == 6
    # Arrival times follow the stream clock (scaled by speed), not the decoder's pace.
    spread = samples[-1].arrived_at - samples[0].arrived_at
    assert spread > 0 and samples[0].arrived_at >= start


def test_pool_drops_oldest_first_and_counts() -> None:
    pool = WorkerPool(1, per_stream=2)
    gate = threading.Event()
    done: list[int] = []
    pool.submit("a", gate.wait)  # occupies the only worker
    time.sleep(0.05)
    accepted = [pool.submit("a", lambda i=i: done.append(i)) for i in range(5)]
    assert accepted == [True, True, False, False, False]
    assert pool.dropped("a") == 3 and pool.dropped("b") == 0
    pool.submit("b", lambda: done.append(100))
    gate.set()
    pool.close()
    assert sorted(done) == [3, 4, 100]  # the newest two of "a" survived


def test_default_workers_are_the_cores_this_process_may_use(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker per usable core by default (a worker classifies on one core): a fixed
    count would leave a large machine's cores idle while samples are dropped."""
    from safestream.live import pool as pool_module

    cores = len(os.sched_getaffinity(0))
    assert pool_module.usable_cores() == cores
    monitor = Monitor(SampleAnalyzer(engine, None))
    try:
        assert len(monitor.pool._threads) == cores
    finally:
        monitor.close()
    # On a machine (or a CPU set) of 5 cores: 5 workers, whatever this one has.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(5)))
    monitor = Monitor(SampleAnalyzer(engine, None))
    try:
        assert len(monitor.pool._threads) == 5
    finally:
        monitor.close()
    explicit = WorkerPool(3)
    assert len(explicit._threads) == 3
    explicit.close()


def test_temporal_policy_k_of_n(engine: Engine) -> None:
    """A scorer flagging every frame: k of n samples over the threshold give a verdict."""
    rec = Recorder()
    policy = TemporalPolicy(window=5, min_flagged=3, score_threshold=0.5)
    calls = iter(range(1000))

    def scorer(rgb: np.ndarray) -> dict[str, float | None]:
        return {"explicit_nudity": 0.9 if next(calls) % 2 == 0 else 0.1, "csam": None}

    monitor = Monitor(
        SampleAnalyzer(None, scorer),
        policy=policy,
        on_event=rec.event,
        workers=1,
        actions={"warn": rec.action, "obscure": rec.action, "open_case": rec.action},
        per_stream_queue=64,
    )
    pipe = Pipe(stream_frames(False, seed=800))
    monitor.add(Source(fileobj=pipe.reader, format="mpegts"), StreamContext("c"))
    try:
        assert monitor.wait(timeout=120)
    finally:
        monitor.close()
        pipe.close()
    samples = rec.of("c", "sample")
    flagged_at = [e for e in samples if e["verdict"] == "classifier"]
    # Samples 0, 2, 4 flagged: the window of 5 holds 3 flags at the 5th sample (t = 4 s).
    assert flagged_at and flagged_at[0]["stream_time_s"] == pytest.approx(4.0, abs=0.3)
    assert sorted(r.action for r in rec.requests) == ["obscure", "open_case", "warn"]
    case = next(r for r in rec.requests if r.action == "open_case")
    assert len(case.sample_times_s) == 3 and len(case.evidence_png) == 3
    assert rec.of("c", "stream_end")[0]["ended_by"] == "eof"  # no end_stream in this policy
    with pytest.raises(Exception, match="min_flagged"):
        TemporalPolicy(window=2, min_flagged=3)
    with pytest.raises(Exception, match="unknown live action"):
        TemporalPolicy(match_actions=("explode",))


def test_dropped_source_reconnects_with_backoff(tmp_path: Path) -> None:
    """A network source that ends is reopened; tries are counted until one delivers."""
    path = tmp_path / "s.ts"
    _sample_file(path, FPS, seconds=2)
    rec = Recorder()
    monitor = Monitor(SampleAnalyzer(None), on_event=rec.event, per_stream_queue=64)
    src = Source(url=str(path), reconnect=True, reconnect_delay_s=0.01, max_reconnects=2)
    session = monitor.add(src, StreamContext("r"))
    try:
        deadline = time.monotonic() + 60
        while len(rec.of("r", "reconnect")) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        session.stop()
        assert monitor.wait(timeout=60)
    finally:
        monitor.close()
    reconnects = rec.of("r", "reconnect")
    assert len(reconnects) >= 3
    # Each reconnection delivered samples, so the count of tries started again.
    assert {e["attempt"] for e in reconnects} == {1}
    assert session.metrics.samples >= 6

    missing = Source(url=str(tmp_path / "gone.ts"), reconnect=True, reconnect_delay_s=0.01)
    rec2 = Recorder()
    m2 = Monitor(SampleAnalyzer(None), on_event=rec2.event)
    try:
        s2 = m2.add(missing, StreamContext("m"))
        assert m2.wait(timeout=60)
    finally:
        m2.close()
    assert [e["attempt"] for e in rec2.of("m", "reconnect")] == [1, 2, 3, 4, 5]
    assert [e["delay_s"] for e in rec2.of("m", "reconnect")] == [0.01, 0.02, 0.04, 0.08, 0.16]
    assert s2.error and "cannot open" in s2.error


@pytest.mark.parametrize(
    ("scheme", "muxer", "options"),
    [("rtmp", "flv", "None"), ("rtsp", "rtsp", "{'rtsp_transport': 'tcp'}")],
)
def test_listener_receives_a_pushed_stream(
    engine: Engine, scheme: str, muxer: str, options: str
) -> None:
    """PyAV listens for RTMP or RTSP; another process (PyAV too) pushes to it."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"{scheme}://127.0.0.1:{port}/live/test"
    rec = Recorder()
    monitor = _monitor(engine, rec)
    tests_dir = str(Path(__file__).resolve().parents[1])
    pusher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1])\n"
            "from live.test_monitor import stream_frames\n"
            "from video_support import encode\n"
            "for _ in range(60):  # until the listener is up\n"
            "    time.sleep(0.5)\n"
            "    try:\n"
            f"        encode(sys.argv[2], stream_frames(True), fps=10, container_format='{muxer}',"
            f" options={options})\n"
            "        break\n"
            "    except OSError:\n"
            "        pass\n",
            tests_dir,
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        monitor.add(Source(url=url, listen=True), StreamContext(scheme, ip_address="127.0.0.1"))
        assert monitor.wait(timeout=120)
    finally:
        monitor.close()
        pusher.kill()
        pusher.wait()
    matched = [e for e in rec.of(scheme, "sample") if e["verdict"] == "match"]
    assert matched, rec.events
    # RTSP carries RTP timestamps that FFmpeg re-bases on the first RTCP sender
    # report: the stream clock may be off by a frame or two (<= 0.1 s here).
    slack = 0.1 if scheme == "rtsp" else 0.0
    assert X - slack <= matched[0]["stream_time_s"] <= Y + 1.0, [
        (e["stream_time_s"], e["verdict"]) for e in rec.of(scheme, "sample")
    ]
    assert [r.action for r in rec.requests].count("end_stream") == 1


def test_oversized_frames_end_the_stream_with_a_clear_error(tmp_path: Path) -> None:
    from safestream.live import StreamError

    path = tmp_path / "s.ts"
    _sample_file(path, FPS, seconds=1)
    container = Source(url=str(path)).open()
    try:
        with pytest.raises(StreamError, match="exceed"):
            list(Sampler(1.0, max_frame_pixels=1000).samples(container))
    finally:
        container.close()


def test_overload_drops_oldest_samples_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "s.ts"
    _sample_file(path, FPS, seconds=8)

    def slow(rgb: np.ndarray) -> dict[str, float | None]:
        time.sleep(0.2)  # a classifier far slower than the stream
        return {"explicit_nudity": 0.0}

    rec = Recorder()
    monitor = Monitor(SampleAnalyzer(None, slow), on_event=rec.event, workers=1, per_stream_queue=1)
    try:
        monitor.add(Source(url=str(path)), StreamContext("busy"))
        assert monitor.wait(timeout=60)
    finally:
        monitor.close()
    seen = [e["stream_time_s"] for e in rec.of("busy", "sample")]
    (end,) = rec.of("busy", "stream_end")
    assert end["metrics"]["samples"] == 8
    assert end["metrics"]["dropped"] > 0
    assert len(seen) + end["metrics"]["dropped"] == 8
    assert seen[-1] == pytest.approx(7.0, abs=0.3)  # the newest sample is never the one dropped


def test_warn_is_suppressed_for_a_streamer_under_a_nondisclosure_order(
    engine: Engine, repo: BankRepository
) -> None:
    from requests_support import new_request
    from safestream.requests.nondisclosure import identifiers_of, nondisclosure_applies
    from safestream.requests.service import RequestService

    store = repo.store
    RequestService(store).create(
        new_request(identifiers=["acct-ndo"], non_disclosure=True), actor="test"
    )
    rec = Recorder()
    monitor = _monitor(
        engine,
        rec,
        policy=TemporalPolicy(match_actions=("warn", "open_case")),
        silenced=lambda ctx: nondisclosure_applies(store, identifiers_of(ctx)),
    )
    quiet, told = Pipe(stream_frames(True)), Pipe(stream_frames(True))
    monitor.add(Source(fileobj=quiet.reader, format="mpegts"), StreamContext("s-ndo", "ACCT-NDO"))
    monitor.add(Source(fileobj=told.reader, format="mpegts"), StreamContext("s-free", "acct-free"))
    try:
        assert monitor.wait(timeout=120)
        listing = {s["stream_id"]: s for s in monitor.streams()}
    finally:
        monitor.close()
        quiet.close()
        told.close()
    warned = {r.context.stream_id for r in rec.requests if r.action == "warn"}
    cased = {r.context.stream_id for r in rec.requests if r.action == "open_case"}
    assert warned == {"s-free"} and cased == {"s-ndo", "s-free"}
    (suppressed,) = rec.of("s-ndo", "action_suppressed")
    assert suppressed["action"] == "warn" and suppressed["reason"] == "nondisclosure"
    assert not rec.of("s-free", "action_suppressed")
    fired = {a["action"]: a for a in listing["s-ndo"]["actions"]}
    assert fired["warn"]["suppressed"] == "nondisclosure"


def test_analyzer_hands_the_scorer_frames_at_its_stretch_size() -> None:
    """With ``scorer_size`` the scorer gets the frame stretched to it in one resample (as
    the classifiers would stretch it); without, the sample's 512-px frame. A match or a
    flag still keeps the 512-px frame as evidence."""
    from safestream.live.ingest import Sample

    seen: list[tuple[int, ...]] = []

    def scorer(rgb: np.ndarray) -> dict[str, float | None]:
        seen.append(rgb.shape)
        return {"explicit_nudity": float(rgb.mean()) / 255}

    picture = known_frame(44, 640, 480)

    def sample() -> Sample:
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        return Sample(1.0, time.monotonic(), True, frame=frame)

    stretched = SampleAnalyzer(None, scorer, scorer_size=(256, 200)).analyse(sample())
    plain = SampleAnalyzer(None, scorer).analyse(sample())
    assert seen == [(200, 256, 3), (384, 512, 3)]
    assert stretched.scores is not None and plain.scores is not None
    # The same picture either way: the mean brightness agrees closely.
    assert stretched.scores["explicit_nudity"] == pytest.approx(
        plain.scores["explicit_nudity"], abs=0.01
    )
    s = sample()
    assert s.rgb_stretched(64, 32).shape == (32, 64, 3)
    evidence = s.rgb  # made before the decoded frame is let go
    s.release()
    assert s.rgb_stretched(64, 32) is evidence  # the classifier stretches it itself
    for bad in [(0, 10), (10, 5000), (1,)]:
        with pytest.raises(InputError, match="scorer_size"):
            SampleAnalyzer(None, scorer, scorer_size=bad)  # type: ignore[arg-type]
