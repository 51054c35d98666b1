"""Live streams made by the real ``ffmpeg`` program (Debian's), for the live tests.

``producer`` draws ``testsrc2`` and shows a known benign picture (drawn shapes) from
second X to second Y, H.264 (libx264), into any output the program writes (a pipe, SRT,
RTMP). ``make test`` installs the program where it is missing and it can (root).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from safestream.engine import Engine
from safestream.engine.video import add_video
from safestream.live import ActionRequest, Monitor, SampleAnalyzer
from safestream.signals.video import hash_video
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from video_support import encode, known_frame, shots

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None,
    reason="the ffmpeg program is not installed: `make test` installs Debian's as root "
    "(or: apt-get install ffmpeg)",
)
FPS = 15
SECONDS = 6
#: The known picture is shown from second X to second Y of each test stream.
X, Y = 2.0, 3.5
KNOWN = known_frame(41)


@contextmanager
def known_engine(tmp_path: Path) -> Iterator[Engine]:
    """A bank holding a short clip of the known picture (SQLite: the store is not tested here)."""
    store = Store.open(data_dir=tmp_path / "data")
    repo = BankRepository(store)
    clip = tmp_path / "known.mp4"
    encode(clip, shots([KNOWN], 1, 10), fps=10)
    repo.create_bank("known-video", source="test")
    add_video(repo, "known-video", hash_video(clip), external_id="clip-1")
    try:
        yield Engine(repo)
    finally:
        store.dispose()


def producer(
    tmp_path: Path,
    output: str,
    *,
    known: bool,
    container: str = "mpegts",
    seconds: float = SECONDS,
) -> list[str]:
    """ffmpeg arguments: testsrc2 at real time, the known picture from X to Y, H.264, in
    ``container`` (``mpegts``; ``flv`` for RTMP), ``seconds`` long."""
    args = [
        FFMPEG or "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=320x240:rate={FPS}",
    ]
    if known:
        png = tmp_path / "known.png"
        Image.fromarray(KNOWN).save(png)
        args += [
            "-loop",
            "1",
            "-framerate",
            str(FPS),
            "-i",
            str(png),
            "-filter_complex",
            f"[0:v][1:v]overlay=shortest=1:enable='between(t,{X},{Y})'",
        ]
    return [
        *args,
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        str(FPS),
        "-pix_fmt",
        "yuv420p",
        "-f",
        container,
        output,
    ]


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests: list[ActionRequest] = []
        self.lock = threading.Lock()
        self.sampled = threading.Event()

    def event(self, e: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(e)
        if e["event"] == "sample":
            self.sampled.set()

    def action(self, r: ActionRequest) -> None:
        with self.lock:
            self.requests.append(r)

    def of(self, stream_id: str, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["stream_id"] == stream_id and e["event"] == kind]


def make_monitor(engine: Engine | None, rec: Recorder) -> Monitor:
    callbacks = {a: rec.action for a in ("end_stream", "open_case", "obscure", "warn")}
    return Monitor(
        SampleAnalyzer(engine), on_event=rec.event, actions=callbacks, per_stream_queue=64
    )


def assert_detected_only_in(
    rec: Recorder, bad: str, good: str, *, good_ends: tuple[str, ...] = ("eof",)
) -> None:
    """A match within [X, Y + 1 s] ends ``bad`` once; ``good`` runs to its end untouched
    (``good_ends``: how it may end)."""
    samples = [(e["stream_time_s"], e["verdict"]) for e in rec.of(bad, "sample")]
    matched = [e for e in rec.of(bad, "sample") if e["verdict"] == "match"]
    assert matched, samples
    assert X <= matched[0]["stream_time_s"] <= Y + 1.0, samples
    assert matched[0]["matches"][0]["bank"] == "known-video"
    assert [r.action for r in rec.requests].count("end_stream") == 1
    assert {r.context.stream_id for r in rec.requests} == {bad}
    (end,) = rec.of(bad, "stream_end")
    assert end["ended_by"] == "end_stream"

    assert rec.of(good, "sample") and all(
        e["verdict"] == "no_match" for e in rec.of(good, "sample")
    )
    (good_end,) = rec.of(good, "stream_end")
    assert good_end["ended_by"] in good_ends, (good_end, rec.of(good, "error"))
    assert good_end["metrics"]["samples"] >= SECONDS - 1  # one a second, the stream's length
    assert not rec.of(good, "error"), rec.of(good, "error")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdout is not None:
        proc.stdout.close()
    proc.kill()
    proc.wait()
