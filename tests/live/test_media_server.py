"""RTMP pulled from a real media server: Debian's nginx with its RTMP module.

Debian's ``ffmpeg`` program publishes ``testsrc2`` (a known benign picture from second X
to second Y) to nginx over RTMP; the monitor pulls it as a platform pulls a broadcaster's
stream from its ingest server. ``make test`` installs ``nginx-light`` and
``libnginx-mod-rtmp`` with the program where it can (root); without them these tests
skip, saying so. nginx runs from a configuration in the test's temporary folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ffmpeg_support import (
    FFMPEG,
    Recorder,
    assert_detected_only_in,
    known_engine,
    make_monitor,
    producer,
    stop_process,
)
from safestream.engine import Engine
from safestream.live import Source, StreamContext

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
needs_media_server = pytest.mark.skipif(
    FFMPEG is None or not Path(NGINX).exists() or not RTMP_MODULE.exists(),
    reason="no media server: `make test` installs Debian's nginx-light, libnginx-mod-rtmp "
    "and ffmpeg as root (or: apt-get install nginx-light libnginx-mod-rtmp ffmpeg)",
)


def _tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class RtmpServer:
    port: int
    log: Path

    def wait_playing(self, names: list[str], timeout_s: float = 20.0) -> None:
        """Until nginx has taken each name's ``play`` command (its info log says so)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if all(f"play: name='{n}'" in text for n in names):
                return
            time.sleep(0.05)
        raise AssertionError(f"nginx never took play for {names}")


@pytest.fixture
def rtmp_server(tmp_path: Path) -> Iterator[RtmpServer]:
    """nginx with two RTMP applications: ``wait`` (a player may come before its publisher)
    and ``live`` (``idle_streams off``: players are refused while nobody publishes and
    disconnected when the publisher goes)."""
    port = _tcp_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"""load_module {RTMP_MODULE};
daemon off;
master_process off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log info;
events {{ worker_connections 64; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    application wait {{ live on; }}
    application live {{ live on; idle_streams off; }}
  }}
}}
"""
    )
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "nginx-error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (tmp_path / "nginx-error.log").read_text(errors="replace")
                    raise AssertionError(f"nginx did not start: {log[-2000:]}") from None
                time.sleep(0.05)
        yield RtmpServer(port, tmp_path / "nginx-error.log")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with known_engine(tmp_path) as e:
        yield e


def _connected(port: int, count: int, timeout_s: float = 20.0) -> None:
    """Until ``count`` TCP connections to the server are established."""
    remote = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as fh:
            rows = [line.split() for line in fh.readlines()[1:]]
        # Client side of a connection to the server, established (state 01).
        if sum(1 for r in rows if r[2] == remote and r[3] == "01") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} clients did not connect to 127.0.0.1:{port}")


@needs_media_server
def test_rtmp_pulled_from_a_media_server(
    engine: Engine, rtmp_server: RtmpServer, tmp_path: Path
) -> None:
    """The monitor plays both streams from nginx; the known picture ends only its own."""
    rec = Recorder()
    monitor = make_monitor(engine, rec)
    base = f"rtmp://127.0.0.1:{rtmp_server.port}/wait"
    publishers: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("bad", "good"):
            # Players first: each then gets its stream from the publisher's first frame,
            # so stream times are the publisher's (X to Y is when the picture shows).
            source = Source(url=f"{base}/{name}", reconnect=False)
            monitor.add(source, StreamContext(f"rtmp-{name}"))
        rtmp_server.wait_playing(["bad", "good"])
        for name in ("bad", "good"):
            publishers.append(
                subprocess.Popen(
                    producer(tmp_path, f"{base}/{name}", known=name == "bad", container="flv"),
                    stdin=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for p in publishers:
            assert p.wait(timeout=60) == 0
        # nginx keeps a player of the `wait` application after its publisher leaves (an
        # idle stream); the good stream is stopped here, once its samples are in.
        deadline = time.monotonic() + 30
        while not rec.of("rtmp-bad", "stream_end") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        monitor.close()
        for p in publishers:
            stop_process(p)
    assert_detected_only_in(rec, "rtmp-bad", "rtmp-good", good_ends=("stopped", "closed"))


@needs_media_server
def test_a_killed_publisher_is_reconnected_to(rtmp_server: RtmpServer, tmp_path: Path) -> None:
    """The broadcaster drops and comes back: the monitor reconnects and samples again."""
    rec = Recorder()
    monitor = make_monitor(None, rec)
    url = f"rtmp://127.0.0.1:{rtmp_server.port}/live/flaky"
    first = subprocess.Popen(
        producer(tmp_path, url, known=False, container="flv", seconds=60),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    second: subprocess.Popen[bytes] | None = None
    try:
        _connected(rtmp_server.port, 1)  # the publisher is connected
        monitor.add(Source.parse(url), StreamContext("flaky"))
        deadline = time.monotonic() + 30
        while len(rec.of("flaky", "sample")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = len(rec.of("flaky", "sample"))
        assert before >= 2, rec.events
        reconnects = len(rec.of("flaky", "reconnect"))
        stop_process(first)  # killed: nginx disconnects its players (idle_streams off)
        while len(rec.of("flaky", "reconnect")) == reconnects and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(rec.of("flaky", "reconnect")) > reconnects, rec.events
        second = subprocess.Popen(
            producer(tmp_path, url, known=False, container="flv", seconds=60),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 40
        while len(rec.of("flaky", "sample")) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        monitor.close()
        stop_process(first)
        if second is not None:
            stop_process(second)
    samples = rec.of("flaky", "sample")
    assert len(samples) >= before + 2, rec.events  # sampling went on after the reconnect
    assert not rec.of("flaky", "error"), rec.of("flaky", "error")
    times = [e["stream_time_s"] for e in samples]
    assert times == sorted(times)  # the stream's time goes on, never back
    (end,) = rec.of("flaky", "stream_end")
    assert end["ended_by"] in ("stopped", "closed"), end
