"""Which live sources an API caller may make the service open (SSRF and LFI guard).

Letting a caller name any URL or path would let them make the server fetch internal
addresses (SSRF) or read its own files (LFI). So a source is opened only when the
server's configuration permits it:

* a URL must match one of ``SAFESTREAM_LIVE_ALLOWED_SOURCES`` (comma-separated
  ``scheme://host[:port][/path]`` prefixes), compared by parsed parts, never as raw
  string prefixes (``rtmp://ingest.example.com.evil.test`` does not match
  ``rtmp://ingest.example.com``);
* a local file must lie under ``SAFESTREAM_LIVE_FILE_ROOT`` after symlinks are
  resolved; it is opened through FFmpeg's ``file:`` protocol only.

Nothing is allowed by default. Each opened source is restricted to its own protocols
(FFmpeg's ``protocol_whitelist``), so an HLS playlist cannot point at ``file:`` URLs;
an HLS playlist on an allowed host can still name segments on other http(s) hosts,
so allow HLS only from hosts you trust.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from safestream.errors import ConfigError, InputError
from safestream.live.ingest import Source

ENV_ALLOWED = "SAFESTREAM_LIVE_ALLOWED_SOURCES"
ENV_FILE_ROOT = "SAFESTREAM_LIVE_FILE_ROOT"

#: URL schemes a live source may use, with the FFmpeg protocols each may touch.
PROTOCOLS: dict[str, str] = {
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,tcp,tls",
    "rtsp": "rtsp,rtp,udp,tcp",
    "rtsps": "rtsps,rtp,udp,tcp,tls",
    "srt": "srt,udp",
    "http": "http,tcp,crypto",
    "https": "https,http,tcp,tls,crypto",
}
DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443, "rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


class SourceNotAllowedError(InputError):
    """The server's configuration does not permit this source (HTTP 403)."""


@dataclass(frozen=True)
class AllowedPrefix:
    """One parsed entry of the allow-list."""

    scheme: str
    host: str
    port: int | None
    path: str

    @classmethod
    def parse(cls, entry: str) -> AllowedPrefix:
        """Parse ``scheme://host[:port][/path]``; ConfigError naming the setting when bad."""
        parts = urlsplit(entry.strip())
        where = f"{ENV_ALLOWED} entry {entry[:200]!r}"
        if parts.scheme not in PROTOCOLS:
            raise ConfigError(
                f"{where}: scheme must be one of {', '.join(sorted(PROTOCOLS))} "
                "(local files are allowed by " + ENV_FILE_ROOT + ")"
            )
        if not parts.hostname:
            raise ConfigError(f"{where}: no host (write scheme://host[:port][/path])")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ConfigError(f"{where}: no credentials, ?query or #fragment in a prefix")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"{where}: invalid port") from None
        return cls(parts.scheme, parts.hostname.lower(), port, parts.path)

    def matches(self, scheme: str, host: str, port: int | None, path: str) -> bool:
        """Whether a parsed source URL falls under this prefix."""
        if scheme != self.scheme or host != self.host:
            return False
        if self.port is not None and (port or DEFAULT_PORTS.get(scheme)) != self.port:
            return False
        if not self.path or self.path == "/":
            return True
        if self.path.endswith("/"):
            return path.startswith(self.path)
        return path == self.path or path.startswith(self.path + "/")


@dataclass(frozen=True)
class SourcePolicy:
    """The sources an API caller may start monitoring."""

    prefixes: tuple[AllowedPrefix, ...] = ()
    file_root: Path | None = None

    @classmethod
    def parse(cls, allowed: tuple[str, ...], file_root: str | None) -> SourcePolicy:
        """From the settings' raw values (ConfigError on a bad entry)."""
        root = None
        if file_root:
            root = Path(file_root).expanduser()
            if not root.is_absolute():
                raise ConfigError(f"{ENV_FILE_ROOT} must be an absolute path, got {file_root!r}")
            root = root.resolve()
        return cls(tuple(AllowedPrefix.parse(a) for a in allowed if a.strip()), root)

    def source(self, spec: str) -> Source:
        """The :class:`Source` for ``spec``, or SourceNotAllowedError / InputError."""
        if any(ord(c) < 32 or c == "\\" for c in spec):
            raise InputError("source contains control characters or backslashes")
        if "://" in spec:
            return self._url(spec)
        if spec.startswith("file:") or ":" in spec.split("/", 1)[0]:
            raise InputError(
                f"source {spec[:200]!r} is neither a URL (scheme://host/...) nor a plain path; "
                f"URL schemes: {', '.join(sorted(PROTOCOLS))}"
            )
        return self._file(spec)

    def _url(self, spec: str) -> Source:
        parts = urlsplit(spec)
        scheme = parts.scheme.lower()
        if scheme not in PROTOCOLS:
            raise InputError(
                f"source scheme {scheme!r} is not supported; use one of "
                f"{', '.join(sorted(PROTOCOLS))}, or a path under {ENV_FILE_ROOT}"
            )
        try:
            port = parts.port
        except ValueError:
            raise InputError("source URL has an invalid port") from None
        host = (parts.hostname or "").lower()
        if not host:
            raise InputError("source URL has no host")
        segments = unquote(parts.path).split("/")
        if ".." in segments or "." in segments:
            raise InputError("source URL path must not contain '.' or '..' segments")
        if not self.prefixes:
            raise SourceNotAllowedError(
                "no live source URL is allowed on this server: an administrator must list "
                f"permitted scheme://host[:port][/path] prefixes in {ENV_ALLOWED}"
            )
        if not any(p.matches(scheme, host, port, parts.path) for p in self.prefixes):
            shown = f"{scheme}://{host}" + (f":{port}" if port else "")
            raise SourceNotAllowedError(
                f"source {shown} is not in this server's allow-list; an administrator may "
                f"add its prefix to {ENV_ALLOWED}"
            )
        return Source(
            url=spec,
            options={"protocol_whitelist": PROTOCOLS[scheme]},
            reconnect=True,
        )

    def _file(self, spec: str) -> Source:
        if self.file_root is None:
            raise SourceNotAllowedError(
                "local files are not allowed as live sources on this server: an "
                f"administrator may set {ENV_FILE_ROOT} to a directory they may be read from"
            )
        raw = Path(posixpath.normpath(spec)) if spec.startswith("/") else self.file_root / spec
        try:
            resolved = raw.resolve()
        except (OSError, RuntimeError):
            raise InputError(f"source path {spec[:200]!r} cannot be resolved") from None
        if not resolved.is_relative_to(self.file_root):
            raise SourceNotAllowedError(
                f"source path is outside {ENV_FILE_ROOT} ({self.file_root}); only files "
                "under it may be monitored"
            )
        if not resolved.is_file():
            raise InputError(f"no such file under {ENV_FILE_ROOT}: {spec[:200]!r}")
        return Source(
            url=f"file:{resolved}",
            options={"protocol_whitelist": "file"},
            realtime=True,
        )


__all__ = [
    "ENV_ALLOWED",
    "ENV_FILE_ROOT",
    "AllowedPrefix",
    "SourceNotAllowedError",
    "SourcePolicy",
]
