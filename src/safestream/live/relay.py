"""Sources whose protocol PyAV's FFmpeg lacks, read through the system ``ffmpeg`` program.

PyAV's wheels bundle an FFmpeg without libsrt, so ``srt://`` fails there with
"Protocol not found". Debian's ``ffmpeg`` program has it. When PyAV lacks a URL's
protocol and the program has it, :meth:`Source.open <safestream.live.ingest.Source.open>`
runs the program as a child that only copies (``-c copy``, no decoding) the source into
MPEG-TS on its stdout, and PyAV reads that pipe like any other MPEG-TS pipe:

    ffmpeg -nostdin -loglevel error [-protocol_whitelist ...] -i URL -c copy -f mpegts pipe:1

The child belongs to the container it feeds: closing the container (the monitor does
at the end of every connection, including on stop and ``end_stream``) terminates and
reaps it; so do garbage collection of a container never closed, and interpreter exit.
A child that sends nothing for :data:`READ_TIMEOUT_S` (a listener with no caller, a
stalled network) is killed, as PyAV's own 20 s network timeout would end the read. A
child that exits with an error gives a :class:`StreamError` with the last lines of its
stderr, with the URL's credentials (user info, ``passphrase`` and the like) masked.
Reconnecting is the session's business, as for every URL source.

The source's options (the allow-list's ``protocol_whitelist`` among them) are passed to
the child as input options, so the relay is held to the same protocols. The URL is on
the child's command line, where local users may see it (``ps``): prefer SRT setups
whose passphrase is not secret from the machine's other users.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import re
import select
import shutil
import subprocess
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from safestream.errors import InputError
from safestream.live.ingest import StreamError
from safestream.signals.video import require_av

if TYPE_CHECKING:
    from safestream.live.ingest import Source

log = logging.getLogger(__name__)

#: Seconds without a byte from the child before it is taken as stalled and killed
#: (PyAV's own network sources use 20 s).
READ_TIMEOUT_S = 20.0
#: Lines of the child's stderr kept for the error message.
STDERR_LINES = 8
#: Seconds a child gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE_S = 2.0
#: Query keys whose values are secrets (SRT's ``passphrase``, a ``streamid`` that
#: often carries a user and key, generic tokens).
SECRET_KEYS = frozenset(
    {"passphrase", "password", "passwd", "pass", "token", "secret", "key", "streamid", "auth"}
)
_OPTION_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
#: Command-line options that would add an input or change what the child reads or writes.
_REFUSED_OPTIONS = frozenset({"i", "y", "n", "f", "map", "filter_complex", "lavfi"})

_live: weakref.WeakSet[Relay] = weakref.WeakSet()


def program() -> str | None:
    """Path of the system ``ffmpeg`` program, or None when it is not on PATH."""
    return shutil.which("ffmpeg")


@functools.lru_cache(maxsize=8)
def program_protocols(path: str) -> frozenset[str]:
    """The input protocols an ``ffmpeg`` program supports (empty when it cannot say)."""
    try:
        out = subprocess.run(
            [path, "-hide_banner", "-protocols"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    found: set[str] = set()
    section = None
    for line in out.splitlines():
        word = line.strip()
        if word.endswith(":"):
            section = word[:-1].lower()
        elif section == "input" and word:
            found.add(word)
    return frozenset(found)


def scheme_of(url: str) -> str:
    """A URL's scheme (its FFmpeg protocol name), lower case; '' when it has none."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def can_relay(url: str) -> bool:
    """Whether the system ``ffmpeg`` program can read this URL's protocol."""
    path = program()
    scheme = scheme_of(url)
    return bool(path and scheme and scheme in program_protocols(path))


def redact(url: str) -> str:
    """The URL without user info and with secret query values masked."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(
        f"{k}=***" if k.lower() in SECRET_KEYS else (f"{k}={v}" if v else k)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _secrets(url: str) -> list[str]:
    """The literal secrets of a URL (user info and secret query values), longest first."""
    parts = urlsplit(url)
    found = []
    if "@" in parts.netloc:
        found.append(parts.netloc.rsplit("@", 1)[0])
    raw = parts.query.split("&") if parts.query else []
    for item in raw:
        key, _, value = item.partition("=")
        if key.lower() in SECRET_KEYS and value:
            found.append(value)
    return sorted(found, key=len, reverse=True)


def command(
    ffmpeg: str, url: str, options: Mapping[str, str], *, listen: bool, format: str | None
) -> list[str]:
    """The child's argument vector (no shell: each option and the URL are one argument)."""
    args = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
    # FFmpeg probes 5 s of input before its first output by default, and that would add
    # to the first sample's latency (measured: 5.4 s to open, 1.8 s with 1 s). PyAV probes
    # the pipe again, so a stream whose parameters come later is still read.
    opts = {"analyzeduration": "1000000", **options}
    if listen:
        # SRT's listener is an option of its own; other protocols use FFmpeg's "listen".
        if scheme_of(url) == "srt":
            opts.setdefault("mode", "listener")
        else:
            opts.setdefault("listen", "1")
    if format:
        args += ["-f", format]
    for key, value in opts.items():
        if not _OPTION_KEY.match(key) or key in _REFUSED_OPTIONS:
            raise InputError(f"source option {key!r} cannot be passed to the ffmpeg relay")
        args += [f"-{key}", str(value)]
    # Flushing every packet keeps the pipe's latency at the source's own.
    return [*args, "-i", url, "-c", "copy", "-flush_packets", "1", "-f", "mpegts", "pipe:1"]


class Relay:
    """One running ``ffmpeg`` child copying a source into MPEG-TS on its stdout.

    PyAV reads it through :meth:`read`. :meth:`close` terminates and reaps the child.
    """

    def __init__(
        self, args: list[str], url: str, what: str, stop: threading.Event | None = None
    ) -> None:
        self.url = url
        #: Set by whoever stops the stream: reads end within one poll (0.5 s).
        self._stop = stop
        self.what = what
        self.read_timeout_s = READ_TIMEOUT_S
        self._secrets = _secrets(url)
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._lock = threading.Lock()
        self._stopped = False
        self._failed = False
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._fd = self.proc.stdout.fileno()
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr,
            args=(self.proc.stderr,),
            name=f"safestream-relay-{self.proc.pid}",
            daemon=True,
        )
        self._stderr_thread.start()
        _live.add(self)
        log.info("ffmpeg relay started", extra={"source": what, "pid": self.proc.pid})

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def _drain_stderr(self, stream: Any) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._stderr.append(self._scrub(line))
        stream.close()

    def _scrub(self, text: str) -> str:
        text = text.replace(self.url, self.what)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def stderr_tail(self) -> str:
        """The child's last stderr lines (credentials masked), joined by ' | '."""
        return " | ".join(self._stderr)

    def _stop_asked(self) -> bool:
        return self._stopped or (self._stop is not None and self._stop.is_set())

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of MPEG-TS; b'' at the end; StreamError on failure."""
        if self._stop_asked() or self._failed:
            return b""
        deadline = time.monotonic() + self.read_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._failed = True
                self.close()
                raise StreamError(
                    f"{self.what}: no data from the source for {self.read_timeout_s:g} s "
                    "(ffmpeg relay stopped)"
                )
            try:
                ready, _, _ = select.select([self._fd], [], [], min(left, 0.5))
            except (OSError, ValueError):
                return b""  # closed by close() from another thread
            if ready:
                break
            if self._stop_asked():
                return b""
        try:
            data = os.read(self._fd, size)
        except OSError:
            return b""
        if data:
            return data
        code = self._reap()
        if code != 0 and not self._stopped:
            self._failed = True
            detail = self.stderr_tail() or "no message"
            raise StreamError(f"{self.what}: ffmpeg relay exited with status {code}: {detail}")
        return b""

    def _reap(self) -> int | None:
        """Wait for a child whose stdout ended (it exits right after)."""
        try:
            code = self.proc.wait(timeout=TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            self.close()
            return None
        self._stderr_thread.join(timeout=TERMINATE_GRACE_S)
        return code

    def close(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL) and reap it; idempotent."""
        with self._lock:
            self._stopped = True
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=TERMINATE_GRACE_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        _live.discard(self)


class RelayedContainer:
    """A PyAV input container fed by a :class:`Relay`; closing it ends the child too."""

    def __init__(self, container: Any, relay: Relay) -> None:
        self._container = container
        self.relay = relay
        self._finalizer = weakref.finalize(self, relay.close)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def close(self) -> None:
        """Close the container, then terminate and reap the child."""
        try:
            self._container.close()
        finally:
            self._finalizer()

    def __enter__(self) -> RelayedContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_relayed(source: Source, stop: threading.Event | None = None) -> RelayedContainer:
    """Open ``source.url`` through the system ``ffmpeg`` program (see the module doc).

    ``stop``: when set, reads end within one poll, even while the child waits for data.
    """
    path = program()
    assert source.url is not None and path is not None
    what = redact(source.url)
    args = command(path, source.url, source.options, listen=source.listen, format=source.format)
    try:
        relay = Relay(args, source.url, what, stop)
    except OSError as exc:
        raise StreamError(f"{what}: cannot start the ffmpeg relay ({exc})") from exc
    av = require_av()
    try:
        container = av.open(relay, mode="r", format="mpegts")
    except BaseException as exc:
        relay.close()
        if isinstance(exc, StreamError):
            raise
        if isinstance(exc, av.error.FFmpegError | OSError | ValueError):
            tail = relay.stderr_tail()
            raise StreamError(
                f"{what}: cannot open through the ffmpeg relay ({type(exc).__name__}: "
                f"{relay._scrub(str(exc))}" + (f"; ffmpeg: {tail}" if tail else "") + ")"
            ) from exc
        raise
    return RelayedContainer(container, relay)


def live_relays() -> list[Relay]:
    """Relays whose child has not been closed yet (for tests and diagnostics)."""
    return list(_live)


@atexit.register
def _close_all() -> None:
    for relay in list(_live):
        relay.close()


__all__ = [
    "READ_TIMEOUT_S",
    "Relay",
    "RelayedContainer",
    "can_relay",
    "command",
    "live_relays",
    "open_relayed",
    "program",
    "program_protocols",
    "redact",
]
