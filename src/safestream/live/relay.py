"""Sources whose protocol PyAV's FFmpeg lacks, read through the system ``ffmpeg`` program.

PyAV's wheels bundle an FFmpeg without libsrt, so ``srt://`` fails there with
"Protocol not found". Debian's ``ffmpeg`` program has it. When PyAV lacks a URL's
protocol and the program has it, :meth:`Source.open <safestream.live.ingest.Source.open>`
runs the program as a child that only copies (``-c copy``, no decoding) the source into
MPEG-TS on its stdout, and PyAV reads that pipe like any other MPEG-TS pipe:

    ffmpeg -nostdin -loglevel error -f concat -safe 0 [-protocol_whitelist pipe,...]
           -i pipe:0 -c copy -f mpegts pipe:1

The URL is never on the child's command line (where ``ps`` and ``/proc/PID/cmdline``
show it to every local user: an SRT URL carries its ``passphrase`` and ``streamid``),
nor in its environment, nor in a file. It reaches the child on its stdin, as a
one-entry script of FFmpeg's concat demuxer (see :func:`concat_script`)::

    ffconcat version 1.0
    file 'srt://host:port?mode=caller&passphrase=...'
    option protocol_whitelist 'srt,udp'
    option analyzeduration '1000000'

The demuxer opens that entry as the real input, with the ``option`` lines as its input
options (Debian 12's FFmpeg 5.1 has the directive; a program without it fails on the
script's "unknown keyword") and the outer input's interrupt callback, so a listener
waiting for its caller still ends at once on SIGTERM. It
shifts timestamps to start at 0, as the program does anyway, and ends when the entry
ends, so the child exits when the SRT peer goes away. ``-safe 0`` lets the entry be a
URL. A URL or option value with a line break or NUL is refused (:class:`InputError`):
it could add lines to the script; a ``'`` is escaped.

The child belongs to the container it feeds: closing the container (the monitor does
at the end of every connection, including on stop and ``end_stream``) terminates and
reaps it; so do garbage collection of a container never closed, and interpreter exit.
A child that sends nothing for :data:`READ_TIMEOUT_S` (a listener with no caller, a
stalled network) is killed, as PyAV's own 20 s network timeout would end the read. A
child that exits with an error gives a :class:`StreamError` with the last lines of its
stderr, with the URL's credentials (user info, ``passphrase`` and the like) masked.
Reconnecting is the session's business, as for every URL source.

The source's options (the allow-list's ``protocol_whitelist`` among them) are the
entry's input options, so the relayed input is held to the same protocols: the
demuxer's own ``pipe`` is not among them. The whitelist also binds the outer input
(with ``pipe`` added, to read the script). A source without one gets its scheme's
protocols from the allow-list's table (``srt,udp``), or its scheme alone. Unlike an
option on the command line, an option nothing uses is ignored (FFmpeg warns), not an
error. A forced ``format`` becomes the entry's ``format_whitelist``: the input is
probed and must turn out to be that format.
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
from safestream.live.allow import PROTOCOLS
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
#: Input options the child also gives its outer (concat) input, which probes too.
_PROBE_OPTIONS = ("analyzeduration", "probesize")
#: Characters at which FFmpeg's line reader ends an ffconcat script line.
_LINE_BREAKS = ("\n", "\r", "\0")
#: How the child's stderr names its input, the script on stdin (not followed by a digit).
_SCRIPT_NAME = re.compile(r"\bpipe:0(?!\d)")
#: The concat demuxer's line for an entry that failed to open: the lines around it say
#: why and name the URL already.
_ENTRY_FAILED = re.compile(r"\[concat @ 0x[0-9a-f]+\] Impossible to open ")

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
    # FFmpeg's protocols take all after the first "?" as the query, "#" too: an SRT
    # streamid is often "#!::u=...,r=...", which urlsplit would cut off as a fragment.
    query = url.partition("?")[2]
    for item in query.split("&") if query else []:
        key, _, value = item.partition("=")
        if key.lower() in SECRET_KEYS and value:
            found.append(value)
    return sorted(found, key=len, reverse=True)


def input_options(
    url: str, options: Mapping[str, str], *, listen: bool, format: str | None
) -> dict[str, str]:
    """The relayed input's options: the source's, with the relay's defaults.

    InputError for an option that cannot be passed (a key that is not a plain name,
    one that would change what the child reads, a value with a line break or NUL).
    """
    # FFmpeg probes 5 s of input before its first output by default, and that would add
    # to the first sample's latency (measured: 5.4 s to open, 1.8 s with 1 s). PyAV probes
    # the pipe again, so a stream whose parameters come later is still read.
    opts = {"analyzeduration": "1000000", **{k: str(v) for k, v in options.items()}}
    # The child's input is its stdin pipe, whose default whitelist ("crypto,data") the
    # entry would inherit: with none given, the scheme's protocols (the allow-list's).
    scheme = scheme_of(url)
    opts.setdefault("protocol_whitelist", PROTOCOLS.get(scheme, scheme))
    if listen:
        # SRT's listener is an option of its own; other protocols use FFmpeg's "listen".
        if scheme_of(url) == "srt":
            opts.setdefault("mode", "listener")
        else:
            opts.setdefault("listen", "1")
    if format:
        # The concat demuxer cannot force its entry's format: it may only allow that one.
        opts.setdefault("format_whitelist", format)
    for key, value in opts.items():
        if not _OPTION_KEY.match(key) or key in _REFUSED_OPTIONS:
            raise InputError(f"source option {key!r} cannot be passed to the ffmpeg relay")
        if _breaks_line(value):
            raise InputError(
                f"source option {key!r} has a line break or NUL in its value, which the "
                "ffmpeg relay cannot pass: remove it"
            )
    return opts


def _breaks_line(text: str) -> bool:
    """Whether ``text`` holds a character that ends a line of an ffconcat script."""
    return any(c in text for c in _LINE_BREAKS)


def _quoted(text: str) -> str:
    """``text`` as one token of an ffconcat script: single-quoted, each ``'`` as ``'\\''``.

    Inside single quotes FFmpeg's tokenizer takes every character literally (a
    backslash too) up to the next ``'``; outside, a backslash escapes the next one.
    """
    return "'" + text.replace("'", "'\\''") + "'"


def concat_script(
    url: str, options: Mapping[str, str], *, listen: bool, format: str | None
) -> bytes:
    """The ffconcat script the child reads on its stdin: the URL and its input options.

    InputError when the URL or an option value has a line break or NUL (FFmpeg ends a
    script line at each, so it could add a line), or as :func:`input_options`.
    """
    if _breaks_line(url):
        raise InputError(
            "source URL has a line break or NUL character, which the ffmpeg relay "
            "cannot pass: remove it"
        )
    opts = input_options(url, options, listen=listen, format=format)
    lines = [
        "ffconcat version 1.0",
        f"file {_quoted(url)}",
        *(f"option {key} {_quoted(value)}" for key, value in opts.items()),
    ]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def command(
    ffmpeg: str, url: str, options: Mapping[str, str], *, listen: bool, format: str | None
) -> list[str]:
    """The child's argument vector: no URL in it (no shell: each option is one argument).

    The child reads :func:`concat_script` on its stdin (``pipe:0``).
    """
    opts = input_options(url, options, listen=listen, format=format)
    args = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "concat"]
    # The entry is a URL, which the demuxer's safe mode refuses (it allows plain
    # relative file names only); the script is ours, with one entry.
    args += ["-safe", "0"]
    whitelist = opts.get("protocol_whitelist")
    if whitelist:
        # The demuxer copies its whitelist to the entry, whose own option (the same
        # list, without pipe) then narrows it: bound twice, the entry never gets pipe.
        args += ["-protocol_whitelist", f"pipe,{whitelist}"]
    for key in _PROBE_OPTIONS:
        if key in opts:  # the outer input probes too: no longer than the entry
            args += [f"-{key}", opts[key]]
    # Flushing every packet keeps the pipe's latency at the source's own.
    return [*args, "-i", "pipe:0", "-c", "copy", "-flush_packets", "1", "-f", "mpegts", "pipe:1"]


class Relay:
    """One running ``ffmpeg`` child copying a source into MPEG-TS on its stdout.

    PyAV reads it through :meth:`read`. :meth:`close` terminates and reaps the child.
    ``script``, when given, is written to the child's stdin, which is then closed.
    """

    def __init__(
        self,
        args: list[str],
        url: str,
        what: str,
        stop: threading.Event | None = None,
        script: bytes | None = None,
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
            stdin=subprocess.DEVNULL if script is None else subprocess.PIPE,
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
        if script is not None:
            self._send(script)
        log.info("ffmpeg relay started", extra={"source": what, "pid": self.proc.pid})

    def _send(self, script: bytes) -> None:
        """Write the script to the child's stdin and close it (EOF ends the script)."""
        assert self.proc.stdin is not None
        # A short script fits in the pipe's buffer at once; a longer one waits for the
        # child, which reads its input first thing.
        try:
            view = memoryview(script)
            while view:
                view = view[os.write(self.proc.stdin.fileno(), view) :]
        except OSError:
            pass  # the child exited before reading it: read() reports its stderr
        finally:
            self.proc.stdin.close()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def _drain_stderr(self, stream: Any) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").strip()
            if line and not _ENTRY_FAILED.match(line):
                self._stderr.append(self._scrub(line))
        stream.close()

    def _scrub(self, text: str) -> str:
        text = text.replace(self.url, self.what)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        # The child calls its input by the script's name ("pipe:0: Input/output error").
        return _SCRIPT_NAME.sub(lambda _: self.what, text)

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
    listen, format = source.listen, source.format
    args = command(path, source.url, source.options, listen=listen, format=format)
    script = concat_script(source.url, source.options, listen=listen, format=format)
    try:
        relay = Relay(args, source.url, what, stop, script=script)
    except OSError as exc:
        raise StreamError(f"{what}: cannot start the ffmpeg relay ({exc})") from exc
    av = require_av()
    try:
        container = av.open(relay, mode="r", format="mpegts", **source.open_options())
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
    "concat_script",
    "input_options",
    "live_relays",
    "open_relayed",
    "program",
    "program_protocols",
    "redact",
]
