"""Live streams made by the real ``ffmpeg`` program (Debian's), into a pipe and over SRT.

The program draws ``testsrc2`` and shows a known benign picture (drawn shapes) from
second X to second Y; H.264 (libx264). SRT reaches the monitor through the relay
(:mod:`safestream.live.relay`): PyAV's FFmpeg has no libsrt, the program has.
``make test`` installs the program where it is missing and it can (root); without it
these tests skip, saying so.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ffmpeg_support import (
    FFMPEG,
    SECONDS,
    Recorder,
    assert_detected_only_in,
    known_engine,
    make_monitor,
    needs_ffmpeg,
    producer,
    stop_process,
)
from safestream.engine import Engine
from safestream.errors import InputError
from safestream.live import (
    Source,
    StreamContext,
    StreamError,
    relay,
)
from safestream.live.allow import SourcePolicy

needs_srt = pytest.mark.skipif(
    FFMPEG is None or "srt" not in relay.program_protocols(FFMPEG),
    reason="no ffmpeg program with SRT (libsrt): install Debian's ffmpeg",
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with known_engine(tmp_path) as e:
        yield e


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[relay.Relay]:
    """Every relay started during the test (kept after close, to check its child is gone)."""
    out: list[relay.Relay] = []
    init = relay.Relay.__init__

    def record(self: relay.Relay, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        out.append(self)

    monkeypatch.setattr(relay.Relay, "__init__", record)
    return out


@needs_ffmpeg
def test_ffmpeg_program_into_a_pipe(engine: Engine, tmp_path: Path) -> None:
    """MPEG-TS on the program's stdout: a known picture ends only its own stream."""
    rec = Recorder()
    monitor = make_monitor(engine, rec)
    bad = subprocess.Popen(
        producer(tmp_path, "pipe:1", known=True), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    good = subprocess.Popen(
        producer(tmp_path, "pipe:1", known=False), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert bad.stdout is not None and good.stdout is not None
    try:
        monitor.add(Source(fileobj=bad.stdout, format="mpegts"), StreamContext("pipe-bad"))
        monitor.add(Source(fileobj=good.stdout, format="mpegts"), StreamContext("pipe-good"))
        assert monitor.wait(timeout=60)
    finally:
        monitor.close()
        stop_process(bad)
        stop_process(good)
    assert_detected_only_in(rec, "pipe-bad", "pipe-good")


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_bound(port: int, timeout_s: float = 20.0) -> None:
    """Until something listens on UDP 127.0.0.1:port (the relay's SRT listener)."""
    local = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open("/proc/net/udp") as fh:
            if any(line.split()[1] == local for line in fh.readlines()[1:]):
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on udp 127.0.0.1:{port}")


def _relay_pids(ports: list[int], timeout_s: float = 20.0) -> dict[int, list[str]]:
    """The relay children (pid -> argv) for these ports, once all are running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = {
            r.pid: [str(a) for a in r.proc.args]
            for r in relay.live_relays()
            if any(f":{p}" in r.url for p in ports)
        }
        if len(found) == len(ports):
            return found
        time.sleep(0.05)
    raise AssertionError(f"no relay for each of {ports}")


def _gone(pid: int) -> bool:
    """The process has exited and been reaped (a zombie still has its /proc entry)."""
    return not Path(f"/proc/{pid}").exists()


@needs_srt
def test_srt_pushed_to_the_monitor_through_the_relay(engine: Engine, tmp_path: Path) -> None:
    """The program pushes SRT (caller); the monitor listens through the relay."""
    bad_port, good_port = _udp_port(), _udp_port()
    policy = SourcePolicy.parse(
        (f"srt://127.0.0.1:{bad_port}", f"srt://127.0.0.1:{good_port}"), None
    )
    # The allow-list's Source: the relay is reached only through it, with its whitelist.
    bad_source = policy.source(f"srt://127.0.0.1:{bad_port}?mode=listener")
    good_source = policy.source(f"srt://127.0.0.1:{good_port}?mode=listener")
    good_source.reconnect = False  # it ends at the end of its stream
    rec = Recorder()
    monitor = make_monitor(engine, rec)
    pushers: list[subprocess.Popen[bytes]] = []
    try:
        monitor.add(bad_source, StreamContext("srt-bad"))
        monitor.add(good_source, StreamContext("srt-good"))
        relays = _relay_pids([bad_port, good_port])
        for argv in relays.values():
            # The entry's own whitelist is srt,udp (the script's option); pipe reads the script.
            assert argv[argv.index("-protocol_whitelist") + 1] == "pipe,srt,udp"
            assert argv[argv.index("-i") + 1] == "pipe:0"
            assert not [a for a in argv if "srt" in a and "udp" not in a]  # no URL
            assert argv[argv.index("-c") + 1] == "copy"  # it never decodes
        for port, known in ((bad_port, True), (good_port, False)):
            _wait_bound(port)
            url = f"srt://127.0.0.1:{port}?mode=caller"
            pushers.append(
                subprocess.Popen(
                    producer(tmp_path, url, known=known),
                    stdin=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        assert monitor.wait(timeout=60)
    finally:
        monitor.close()
        for p in pushers:
            stop_process(p)
    assert_detected_only_in(rec, "srt-bad", "srt-good")
    assert all(_gone(pid) for pid in relays), relays
    assert not [r for r in relay.live_relays() if r.pid in relays]


@needs_srt
def test_monitor_close_ends_a_running_relay(tmp_path: Path) -> None:
    """Closing the monitor mid-stream terminates and reaps the relay child."""
    port = _udp_port()
    rec = Recorder()
    monitor = make_monitor(None, rec)
    pusher = None
    try:
        monitor.add(Source(url=f"srt://127.0.0.1:{port}?mode=listener"), StreamContext("srt"))
        (pid,) = _relay_pids([port])
        _wait_bound(port)
        pusher = subprocess.Popen(
            producer(tmp_path, f"srt://127.0.0.1:{port}?mode=caller", known=False),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert rec.sampled.wait(timeout=30)
        assert not _gone(pid)
    finally:
        monitor.close()
        if pusher is not None:
            stop_process(pusher)
    assert _gone(pid)
    (end,) = rec.of("srt", "stream_end")
    assert end["ended_by"] == "stopped"


@needs_srt
def test_relay_with_no_data_times_out_and_is_reaped(
    monkeypatch: pytest.MonkeyPatch, started: list[relay.Relay]
) -> None:
    """A listener no caller reaches ends like a network read timeout, child reaped."""
    monkeypatch.setattr(relay, "READ_TIMEOUT_S", 0.5)
    source = Source(url=f"srt://127.0.0.1:{_udp_port()}?mode=listener")
    with pytest.raises(StreamError, match="no data from the source"):
        source.open()
    assert len(started) == 1 and _gone(started[0].pid)


@needs_srt
def test_relay_failure_is_a_clear_error_without_credentials(started: list[relay.Relay]) -> None:
    """The child's own message (its last stderr lines) with user info and passphrase masked."""
    url = (
        f"srt://alice:hunter22@127.0.0.1:{_udp_port()}"
        "?mode=caller&connect_timeout=300&passphrase=verysecret123&streamid=#!::u=bob,r=x"
    )
    with pytest.raises(StreamError) as info:
        Source(url=url).open()
    message = str(info.value)
    assert "ffmpeg relay exited with status" in message and "Input/output error" in message
    assert "127.0.0.1" in message and "passphrase=***" in message
    assert "Impossible to open" not in message  # the concat demuxer's echo of the URL
    for secret in ("verysecret123", "hunter22", "alice", "u=bob"):
        assert secret not in message
    assert len(started) == 1 and _gone(started[0].pid)


@needs_srt
def test_relay_keeps_the_allow_list_whitelist(started: list[relay.Relay]) -> None:
    """The source's protocol_whitelist binds the child: srt outside it is refused."""
    source = Source(
        url=f"srt://127.0.0.1:{_udp_port()}?mode=caller", options={"protocol_whitelist": "udp"}
    )
    with pytest.raises(StreamError, match="not on whitelist"):
        source.open()
    assert len(started) == 1 and _gone(started[0].pid)


@needs_srt
def test_relay_source_reconnects_like_other_url_sources(started: list[relay.Relay]) -> None:
    """A failing relay is retried with backoff, then the stream ends with its error."""
    port = _udp_port()
    policy = SourcePolicy.parse((f"srt://127.0.0.1:{port}",), None)
    source = policy.source(f"srt://127.0.0.1:{port}?mode=caller&connect_timeout=300")
    source.reconnect_delay_s, source.max_reconnects = 0.01, 2
    rec = Recorder()
    monitor = make_monitor(None, rec)
    try:
        session = monitor.add(source, StreamContext("again"))
        assert monitor.wait(timeout=60)
    finally:
        monitor.close()
    assert [e["attempt"] for e in rec.of("again", "reconnect")] == [1, 2]
    assert session.error and "ffmpeg relay exited with status" in session.error
    assert len(started) == 3 and all(_gone(r.pid) for r in started)  # first try + 2


def test_without_any_srt_the_error_is_the_usual_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither PyAV's FFmpeg nor a program has the protocol: "cannot open", no relay."""
    monkeypatch.setattr(relay, "program", lambda: None)
    with pytest.raises(StreamError, match=r"cannot open .*ProtocolNotFoundError") as info:
        Source(url="srt://user:pw@127.0.0.1:9?mode=caller").open()
    assert "user:pw" not in str(info.value)


def test_relay_command_and_redaction() -> None:
    """The URL and its options go in the concat script; argv names only the script's pipe."""
    url = "srt://127.0.0.1:9000?passphrase=hunter22hunter22"
    kind: dict[str, Any] = {"listen": True, "format": None}
    argv = relay.command("ffmpeg", url, {"protocol_whitelist": "srt,udp"}, **kind)
    assert argv[argv.index("-f") + 1] == "concat" and "-mode" not in argv
    assert argv[argv.index("-protocol_whitelist") + 1] == "pipe,srt,udp"
    assert argv[argv.index("-analyzeduration") + 1] == "1000000"
    assert argv[argv.index("-i") + 1] == "pipe:0"
    assert not [a for a in argv if "9000" in a or "hunter22" in a]
    assert argv[-3:] == ["-f", "mpegts", "pipe:1"] and "copy" in argv
    script = relay.concat_script(url, {"protocol_whitelist": "srt,udp"}, **kind)
    assert script.decode().splitlines() == [
        "ffconcat version 1.0",
        f"file '{url}'",
        "option analyzeduration '1000000'",
        "option protocol_whitelist 'srt,udp'",
        "option mode 'listener'",
    ]
    for bad in ({"i": "file:/etc/passwd"}, {"-i": "x"}, {"filter_complex": "x"}, {"a b": "x"}):
        with pytest.raises(InputError, match="cannot be passed"):
            relay.command("ffmpeg", "srt://h:1", bad, listen=False, format=None)
        with pytest.raises(InputError, match="cannot be passed"):
            relay.concat_script("srt://h:1", bad, listen=False, format=None)
    assert (
        relay.redact("srt://u:p@h:1/x?mode=caller&passphrase=s3cret&streamid=#!::u=a")
        == "srt://h:1/x?mode=caller&passphrase=***&streamid=***"
    )


def test_source_names_never_show_credentials_or_secret_query_values() -> None:
    src = Source(url="srt://user:pw@203.0.113.5:9000?mode=caller&passphrase=hunter22&latency=200")
    assert src.describe() == "srt://203.0.113.5:9000?mode=caller&passphrase=***&latency=200"
    assert Source(url="https://cdn.example/live.m3u8?token=abc").describe().endswith("token=***")
    assert Source(url="/data/clip.ts").describe() == "/data/clip.ts"


@needs_srt
def test_stopping_a_relay_that_waits_for_its_caller_is_prompt(started: list[relay.Relay]) -> None:
    """A listener nobody calls ends on stop within a poll, not at the 20 s read timeout."""
    rec = Recorder()
    monitor = make_monitor(None, rec)
    try:
        port = _udp_port()
        monitor.add(Source(url=f"srt://127.0.0.1:{port}?mode=listener"), StreamContext("idle"))
        _wait_bound(port)
        monitor.stop("idle")
        assert monitor.wait(timeout=relay.READ_TIMEOUT_S / 2)
    finally:
        monitor.close()
    (end,) = rec.of("idle", "stream_end")
    assert end["ended_by"] == "stopped", rec.of("idle", "error")
    assert not any("no data" in str(e) for e in rec.of("idle", "error"))
    assert started and all(_gone(r.pid) for r in started)


def test_relay_script_quotes_the_url_as_one_token() -> None:
    """A ``'`` is closed, escaped and reopened; backslashes, ``#`` and spaces stay literal."""
    url = "srt://h:1?streamid=#!::r=it's a \\ test&latency=20"
    script = relay.concat_script(url, {"latency": "o'k"}, listen=False, format="mpegts")
    lines = script.decode().splitlines()
    assert lines[1] == "file 'srt://h:1?streamid=#!::r=it'\\''s a \\ test&latency=20'"
    assert lines[2:] == [
        "option analyzeduration '1000000'",
        "option latency 'o'\\''k'",
        "option protocol_whitelist 'srt,udp'",  # the scheme's, when the source gives none
        "option format_whitelist 'mpegts'",
    ]


@pytest.mark.parametrize("breaker", ["\n", "\r", "\0"])
def test_relay_refuses_what_would_add_a_script_line(breaker: str) -> None:
    """A line break or NUL in the URL or an option value: InputError, nothing quoted into it."""
    url = f"srt://127.0.0.1:9?passphrase=s3cretvalue1{breaker}file 'file:/etc/passwd'"
    with pytest.raises(InputError, match="line break or NUL") as info:
        relay.concat_script(url, {}, listen=False, format=None)
    assert "s3cretvalue1" not in str(info.value) and "passwd" not in str(info.value)
    with pytest.raises(InputError, match="option 'latency' has a line break or NUL"):
        relay.concat_script("srt://h:1", {"latency": f"20{breaker}"}, listen=False, format=None)
    with pytest.raises(InputError, match="line break or NUL"):
        relay.command("ffmpeg", "srt://h:1", {"latency": f"20{breaker}"}, listen=False, format=None)


@needs_srt
def test_relay_refuses_a_url_with_a_line_break_before_starting(started: list[relay.Relay]) -> None:
    """Through Source.open: the relay's InputError, and no child started."""
    with pytest.raises(InputError, match="line break or NUL"):
        Source(url="srt://127.0.0.1:9?mode=caller\nfile 'file:/etc/passwd'").open()
    assert not started


@needs_ffmpeg
def test_relay_script_reaches_ffmpeg_intact(tmp_path: Path, started: list[relay.Relay]) -> None:
    """FFmpeg's own tokenizer reads back the exact name: ``'``, ``\\``, ``#``, ``?``, spaces."""
    clip = tmp_path / "it's a \\ #clip?x=1.ts"
    encode_args = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "1"]
    encode_args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    subprocess.run(
        [
            FFMPEG or "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            *encode_args,
            "-f",
            "mpegts",
            f"file:{clip}",
        ],
        check=True,
    )
    container = relay.open_relayed(
        Source(url=f"file:{clip}", options={"protocol_whitelist": "file"})
    )
    try:
        frames = sum(1 for _ in container.decode(video=0))
    finally:
        container.close()
    assert frames == 10
    (child,) = started
    assert "#clip" not in " ".join(str(a) for a in child.proc.args)
    assert child.proc.returncode == 0 and _gone(child.pid)


@needs_ffmpeg
@pytest.mark.parametrize("url", ["file:/etc/passwd", "http://127.0.0.1:9/x", "pipe:0"])
def test_relay_entry_is_held_to_the_source_whitelist(url: str, started: list[relay.Relay]) -> None:
    """The script's entry opens only the source's protocols, not even the script's own pipe."""
    with pytest.raises(StreamError, match=r"Protocol '\w+' not on whitelist 'srt,udp'"):
        relay.open_relayed(Source(url=url, options={"protocol_whitelist": "srt,udp"}))
    assert len(started) == 1 and _gone(started[0].pid)


#: SRT passphrases are 10 to 79 characters.
PASSPHRASE = "nobody-sees-this-7Qx2"
STREAMID = "#!::u=alice,r=live-'9Kd"


def _proc_bytes(pid: int, name: str) -> bytes:
    """/proc/PID/name once the child's exec has filled it (empty for a moment before)."""
    deadline = time.monotonic() + 10
    while not (data := Path(f"/proc/{pid}/{name}").read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return data


@needs_srt
def test_relay_child_shows_no_url_to_other_users(engine: Engine, tmp_path: Path) -> None:
    """Neither argv nor environment of a running child has the URL; the stream flows all the same.

    The caller pushes with the same passphrase: it connects only if the passphrase reached
    the child intact (SRT refuses a mismatched one).
    """
    port = _udp_port()
    policy = SourcePolicy.parse((f"srt://127.0.0.1:{port}",), None)
    source = policy.source(
        f"srt://127.0.0.1:{port}?mode=listener&passphrase={PASSPHRASE}&streamid={STREAMID}"
    )
    source.reconnect = False
    rec = Recorder()
    monitor = make_monitor(engine, rec)
    pusher = None
    try:
        monitor.add(source, StreamContext("secret"))
        (pid,) = _relay_pids([port])
        _wait_bound(port)
        pusher = subprocess.Popen(
            producer(
                tmp_path, f"srt://127.0.0.1:{port}?mode=caller&passphrase={PASSPHRASE}", known=False
            ),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert rec.sampled.wait(timeout=30), rec.events
        cmdline, environ = _proc_bytes(pid, "cmdline"), _proc_bytes(pid, "environ")
        assert b"pipe:0" in cmdline.split(b"\0")
        assert b"PATH=" in environ
        for secret in (PASSPHRASE, STREAMID, "alice", f"127.0.0.1:{port}", "srt://"):
            assert secret.encode() not in cmdline, cmdline
            assert secret.encode() not in environ
        assert monitor.wait(timeout=60)
    finally:
        monitor.close()
        if pusher is not None:
            stop_process(pusher)
    (end,) = rec.of("secret", "stream_end")
    assert end["ended_by"] == "eof", rec.of("secret", "error")
    assert end["metrics"]["samples"] >= SECONDS - 1
    assert all(e["verdict"] == "no_match" for e in rec.of("secret", "sample"))
    assert _gone(pid)
