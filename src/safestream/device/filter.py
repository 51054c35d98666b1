"""The signed, versioned device filter: format, building, signing and verification.

File layout (every integer big-endian)::

    b"SSDEVF1\\n"                      8 bytes, magic and format version
    header length                     4 bytes
    header                            UTF-8 JSON, sorted keys (see FilterHeader)
    body                              the Bloom filter's bit array

The Ed25519 signature covers the whole file.  The SHA-256 of the whole file is
the filter's public fingerprint: a device can compare it with what other devices
(or a transparency log) see, to check it was not singled out with its own filter.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from safestream.device import oprf
from safestream.device.bloom import DEFAULT_BITS_PER_KEY, BloomFilter, false_positive_rate
from safestream.device.keys import SEGMENT_BITS, SEGMENTS, keys_for_signal
from safestream.errors import InputError, SafestreamError

try:
    from nacl.exceptions import BadSignatureError
    from nacl.signing import SigningKey, VerifyKey
except ImportError as exc:  # pragma: no cover - depends on the environment
    from safestream.errors import ConfigError

    raise ConfigError(
        "the on-device check needs the 'device' extra: pip install 'safestream[device]'"
    ) from exc

MAGIC = b"SSDEVF1\n"
FORMAT = 1
#: A header larger than this is refused before parsing (a filter is untrusted input
#: until its signature is checked).
MAX_HEADER_BYTES = 64 * 1024


class FilterVerificationError(SafestreamError):
    """A filter or its signature failed verification; do not use it. Fetch it again."""


@dataclass(frozen=True)
class FilterHeader:
    """What a filter says about itself (signed along with the body)."""

    format: int
    version: int
    created_at: str
    oprf_key_id: str
    segments: int
    segment_bits: int
    bloom_bits: int
    bloom_hashes: int
    key_count: int
    pdq_entries: int
    exact_entries: int
    banks: tuple[str, ...]
    body_sha256: str
    expected_false_positive_rate: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["banks"] = list(self.banks)
        return d


@dataclass(frozen=True)
class SignedFilter:
    """The filter file's bytes and its detached Ed25519 signature."""

    data: bytes
    signature: bytes

    @property
    def sha256(self) -> str:
        """The public fingerprint of the filter."""
        return hashlib.sha256(self.data).hexdigest()


def _pack(header: FilterHeader, body: bytes) -> bytes:
    head = json.dumps(header.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + struct.pack(">I", len(head)) + head + body


def build_filter(
    entries: Iterable[tuple[str, str]],
    *,
    oprf_secret: bytes,
    signing_key: bytes,
    version: int,
    banks: Iterable[str] = (),
    bits_per_key: int = DEFAULT_BITS_PER_KEY,
    created_at: datetime | None = None,
) -> SignedFilter:
    """Evaluate every entry's keys with the OPRF secret, fill a Bloom filter, sign it.

    ``entries`` are ``(signal_type, value)``; types a device cannot compute are
    skipped.  Duplicate keys (the same segment in many hashes) are inserted once.
    """
    keys: set[bytes] = set()
    pdq_entries = exact_entries = 0
    for signal_type, value in entries:
        found = keys_for_signal(signal_type, value)
        if not found:
            continue
        if signal_type == "pdq":
            pdq_entries += 1
        else:
            exact_entries += 1
        keys.update(found)
    bloom = BloomFilter.for_keys(len(keys), bits_per_key)
    # Evaluate and insert in chunks: the outputs (64 bytes each) are never all in memory.
    chunk: list[bytes] = []
    for key in keys:
        chunk.append(oprf.evaluate(oprf_secret, key))
        if len(chunk) >= 65536:
            bloom.add(chunk)
            chunk = []
    bloom.add(chunk)
    key_count = len(keys)
    del keys
    body = bloom.to_bytes()
    header = FilterHeader(
        format=FORMAT,
        version=version,
        created_at=(created_at or datetime.now(UTC)).isoformat(),
        oprf_key_id=oprf.key_id(oprf.public_key(oprf_secret)),
        segments=SEGMENTS,
        segment_bits=SEGMENT_BITS,
        bloom_bits=bloom.m_bits,
        bloom_hashes=bloom.k,
        key_count=key_count,
        pdq_entries=pdq_entries,
        exact_entries=exact_entries,
        banks=tuple(banks),
        body_sha256=hashlib.sha256(body).hexdigest(),
        expected_false_positive_rate=false_positive_rate(bloom.m_bits, key_count, bloom.k),
    )
    data = _pack(header, body)
    return SignedFilter(data, SigningKey(signing_key).sign(data).signature)


@dataclass(frozen=True)
class VerifiedFilter:
    """A filter whose signature and body hash were checked: safe to query."""

    header: FilterHeader
    bloom: BloomFilter
    sha256: str


def verify_filter(signed: SignedFilter, public_key: bytes) -> VerifiedFilter:
    """Check the signature with the pinned ``public_key``, then parse and check the body."""
    import numpy as np

    try:
        VerifyKey(public_key).verify(signed.data, signed.signature)
    except (BadSignatureError, ValueError, TypeError):
        raise FilterVerificationError(
            "the filter's signature does not verify with the pinned public key; "
            "the filter was altered or signed by someone else: fetch it again"
        ) from None
    data = signed.data
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise FilterVerificationError("not a safestream device filter (bad magic)")
    (head_len,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    if head_len > MAX_HEADER_BYTES:
        raise FilterVerificationError("filter header is too large")
    start = len(MAGIC) + 4
    try:
        raw = json.loads(data[start : start + head_len])
        raw["banks"] = tuple(raw["banks"])
        header = FilterHeader(**raw)
    except (ValueError, TypeError, KeyError):
        raise FilterVerificationError("the filter header is malformed") from None
    body = data[start + head_len :]
    if header.format != FORMAT:
        raise FilterVerificationError(f"filter format {header.format} is not supported")
    if hashlib.sha256(body).hexdigest() != header.body_sha256:
        raise FilterVerificationError("the filter body does not match its signed hash")
    if (header.segments, header.segment_bits) != (SEGMENTS, SEGMENT_BITS):
        raise FilterVerificationError("the filter uses segment parameters this SDK does not")
    try:
        bloom = BloomFilter(
            header.bloom_bits, header.bloom_hashes, np.frombuffer(body, dtype=np.uint8)
        )
    except ValueError as exc:
        raise FilterVerificationError(f"the filter body is malformed: {exc}") from None
    return VerifiedFilter(header, bloom, signed.sha256)


def parse_signature(value: str) -> bytes:
    """A hex signature from a header or file; raises InputError when malformed."""
    try:
        sig = bytes.fromhex(value.strip())
    except ValueError:
        raise InputError("the filter signature must be hexadecimal") from None
    if len(sig) != 64:
        raise InputError("an Ed25519 signature is 64 bytes (128 hex characters)")
    return sig
