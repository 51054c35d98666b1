"""Server side of the on-device check: keys, filter publishing, blinded evaluation.

State lives in files under ``<data dir>/device/`` (no database table): the OPRF
secret and the Ed25519 signing key (mode 0600), the public signing key, and the
current filter with its signature and metadata.  Every file is written to a
temporary file in the same directory and renamed over the old one, so a reader
sees the old or the new file, never half of one.

What the server learns from a device: the number of blinded elements it sent and
when.  A blinded element is ``r * H(key)`` with a fresh random ``r``: uniformly
distributed whatever the key, so it says nothing about the content.  Nothing from
a request is stored; only counts are logged.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safestream.device import oprf
from safestream.device.filter import (
    FilterVerificationError,
    SignedFilter,
    VerifiedFilter,
    build_filter,
    parse_signature,
    verify_filter,
)
from safestream.errors import ConfigError, InputError, NotFoundError, SafestreamError

log = logging.getLogger(__name__)

#: Most blinded elements one request may carry (an image needs 10).
MAX_BATCH = 64
DEFAULT_RATE_PER_S = 10.0
DEFAULT_BURST = 600
ENV_RATE = "SAFESTREAM_DEVICE_RATE_PER_S"
ENV_BURST = "SAFESTREAM_DEVICE_BURST"


class RateLimitedError(SafestreamError):
    """This device key has used its evaluation budget; retry after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def write_atomic(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename (0600 when ``secret``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class TokenBucket:
    """Per-device-key token buckets, in memory of this process.

    Each process keeps its own buckets: behind N processes a device gets up to N
    times the rate.  Size the rate for that, or pin devices to a process.
    """

    def __init__(self, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ConfigError("device rate limit needs rate_per_s > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> TokenBucket:
        """Rate and burst from ``$SAFESTREAM_DEVICE_RATE_PER_S`` / ``$SAFESTREAM_DEVICE_BURST``."""
        try:
            rate = float(os.environ.get(ENV_RATE, DEFAULT_RATE_PER_S))
            burst = int(os.environ.get(ENV_BURST, DEFAULT_BURST))
        except ValueError:
            raise ConfigError(f"{ENV_RATE} must be a number and {ENV_BURST} an integer") from None
        return cls(rate, burst)

    def take(self, device: str, n: int, now: float | None = None) -> None:
        """Spend ``n`` tokens of ``device`` or raise :class:`RateLimitedError`."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(device, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate_per_s)
            if n > tokens:
                self._buckets[device] = (tokens, now)
                wait = (n - tokens) / self.rate_per_s
                raise RateLimitedError(
                    f"evaluation rate limit reached for this device key; retry in {wait:.1f} s",
                    wait,
                )
            self._buckets[device] = (tokens - n, now)
            if len(self._buckets) > 100_000:  # forget devices whose bucket has refilled
                refilled = [
                    k
                    for k, (t, last) in self._buckets.items()
                    if t + (now - last) * self.rate_per_s >= self.burst
                ]
                for k in refilled:
                    del self._buckets[k]


@dataclass(frozen=True)
class PublishedFilter:
    """The current filter and what a device needs alongside it."""

    signed: SignedFilter
    version: int
    oprf_key_id: str
    public_key: bytes

    def info(self) -> dict[str, Any]:
        """JSON-ready metadata (no secret)."""
        return {
            "version": self.version,
            "sha256": self.signed.sha256,
            "signature": self.signed.signature.hex(),
            "oprf_key_id": self.oprf_key_id,
            "public_key": self.public_key.hex(),
            "size_bytes": len(self.signed.data),
        }


class DeviceServer:
    """Keys, filter and evaluation of one service, kept under ``directory``."""

    OPRF_KEY = "oprf.key"
    SIGNING_KEY = "signing.key"
    PUBLIC_KEY = "signing.pub"
    FILTER = "filter.bin"
    SIGNATURE = "filter.sig"
    META = "filter.json"

    def __init__(self, directory: Path, *, limiter: TokenBucket | None = None) -> None:
        self.directory = Path(directory)
        self.limiter = limiter or TokenBucket.from_env()
        self._secret: bytes | None = None
        self._published: PublishedFilter | None = None
        self._published_mtime: float | None = None

    @classmethod
    def default(cls) -> DeviceServer:
        """Under the data directory (``$SAFESTREAM_DATA_DIR`` or the user's data dir)."""
        from safestream.store.db import default_data_dir

        return cls(default_data_dir() / "device")

    # -- keys ---------------------------------------------------------------

    def _read_secret(self, name: str) -> bytes | None:
        path = self.directory / name
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} is readable by others; chmod 600 it")
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise ConfigError(f"{path} is not a hex key; restore it or run keygen") from None
        if len(value) != 32:
            raise ConfigError(f"{path} must hold 32 bytes")
        return value

    def keygen(self, *, rotate: bool = False, rotate_signing: bool = False) -> dict[str, str]:
        """Create the OPRF secret and signing key unless present.

        ``rotate`` replaces the OPRF secret (publish a new filter right after: devices
        follow the key id).  ``rotate_signing`` replaces the signing key, which devices
        pin: ship the new public key to them first, or they refuse every new filter.
        """
        from nacl.signing import SigningKey

        if rotate or self._read_secret(self.OPRF_KEY) is None:
            write_atomic(
                self.directory / self.OPRF_KEY, oprf.random_scalar().hex().encode(), secret=True
            )
        if rotate_signing or self._read_secret(self.SIGNING_KEY) is None:
            seed = secrets.token_bytes(32)
            write_atomic(self.directory / self.SIGNING_KEY, seed.hex().encode(), secret=True)
            pub = bytes(SigningKey(seed).verify_key)
            write_atomic(self.directory / self.PUBLIC_KEY, pub.hex().encode() + b"\n")
        self._secret = None
        return {"public_key": self.public_key().hex(), "oprf_key_id": self.oprf_key_id()}

    def _oprf_secret(self) -> bytes:
        if self._secret is None:
            secret = self._read_secret(self.OPRF_KEY)
            if secret is None:
                raise NotFoundError("no OPRF key yet: run 'safestream device keygen'")
            self._secret = secret
        return self._secret

    def public_key(self) -> bytes:
        """The Ed25519 public key devices pin."""
        try:
            return bytes.fromhex((self.directory / self.PUBLIC_KEY).read_text().strip())
        except FileNotFoundError:
            raise NotFoundError("no signing key yet: run 'safestream device keygen'") from None

    def oprf_key_id(self) -> str:
        """Public id of the current OPRF key."""
        return oprf.key_id(oprf.public_key(self._oprf_secret()))

    # -- filter -------------------------------------------------------------

    def publish(
        self, entries: Iterable[tuple[str, str]], banks: Sequence[str] = ()
    ) -> PublishedFilter:
        """Build, sign and atomically install a new filter version from ``entries``."""
        signing = self._read_secret(self.SIGNING_KEY)
        if signing is None:
            raise NotFoundError("no signing key yet: run 'safestream device keygen'")
        previous = self._read_meta()
        version = int(previous.get("version", 0)) + 1
        signed = build_filter(
            entries,
            oprf_secret=self._oprf_secret(),
            signing_key=signing,
            version=version,
            banks=banks,
        )
        verify_filter(signed, self.public_key())  # never publish what devices would refuse
        write_atomic(self.directory / self.FILTER, signed.data)
        write_atomic(self.directory / self.SIGNATURE, signed.signature.hex().encode() + b"\n")
        published = PublishedFilter(signed, version, self.oprf_key_id(), self.public_key())
        write_atomic(self.directory / self.META, json.dumps(published.info(), indent=2).encode())
        log.info("published device filter", extra={"filter_version": version, "banks": list(banks)})
        self._published = None
        return published

    def publish_banks(self, repo: Any, bank_names: Sequence[str]) -> PublishedFilter:
        """Publish the entries of the named banks (a :class:`BankRepository`)."""
        for name in bank_names:
            if repo.get_bank(name).is_allow_list:
                raise InputError(
                    f"bank {name!r} is an allow list; a block filter needs block banks"
                )

        def entries() -> Iterable[tuple[str, str]]:
            for name in bank_names:
                for entry in repo.iter_entries(name):
                    yield entry.signal_type, entry.value

        return self.publish(entries(), bank_names)

    def _read_meta(self) -> dict[str, Any]:
        try:
            value = json.loads((self.directory / self.META).read_text())
        except FileNotFoundError:
            return {}
        return value if isinstance(value, dict) else {}

    def current(self) -> PublishedFilter:
        """The installed filter (re-read when another process published a new one)."""
        path = self.directory / self.FILTER
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            raise NotFoundError(
                "no device filter published yet: run 'safestream device publish'"
            ) from None
        if self._published is None or mtime != self._published_mtime:
            verified, signed = self._read_filter(path)
            self._published = PublishedFilter(
                signed, verified.header.version, verified.header.oprf_key_id, self.public_key()
            )
            self._published_mtime = mtime
        return self._published

    def _read_filter(self, path: Path) -> tuple[VerifiedFilter, SignedFilter]:
        # publish() renames the filter, then its signature: a reader between the two
        # renames sees a pair that does not verify, so it retries briefly.
        for attempt in range(5):
            signed = SignedFilter(
                path.read_bytes(),
                parse_signature((self.directory / self.SIGNATURE).read_text()),
            )
            try:
                return verify_filter(signed, self.public_key()), signed
            except FilterVerificationError:
                if attempt == 4:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- evaluation ---------------------------------------------------------

    def evaluate(self, elements: Sequence[bytes], *, device: str) -> list[bytes]:
        """BlindEvaluate a batch for ``device`` (rate-limited); logs only the count."""
        if not elements:
            raise InputError("send at least one blinded element")
        if len(elements) > MAX_BATCH:
            raise InputError(f"at most {MAX_BATCH} blinded elements per request")
        self.limiter.take(device, len(elements))
        secret = self._oprf_secret()
        out = [oprf.blind_evaluate(secret, e) for e in elements]
        log.debug("evaluated blinded elements", extra={"element_count": len(out)})
        return out
