"""Which keys of an image go through the OPRF: PDQ segments and exact file hashes.

A 256-bit PDQ hash is cut into :data:`SEGMENTS` segments of :data:`SEGMENT_BITS`
bits; each key carries its position, so segment 3 of one hash never meets
segment 5 of another.  Pigeonhole: two hashes at Hamming distance ``d`` differ in
at most ``d`` segments, so at least ``SEGMENTS - d`` segments are equal.  With
8 x 32 bits, ``d <= 7`` guarantees one equal segment and ``d <= 6`` two.

The exact keys (MD5 and SHA-256 of the file's bytes) catch byte-identical copies
whatever their PDQ quality.
"""

from __future__ import annotations

from typing import Literal

from safestream.errors import SignalValueError

SEGMENTS = 8
SEGMENT_BITS = 32
_SEGMENT_HEX = SEGMENT_BITS // 4
#: Domain tags: a key is ``tag || payload``; the tags are distinct and the payload
#: length is fixed per tag, so no two kinds of key can collide.
PDQ_TAG = b"ss/pdq8x32/"
MD5_TAG = b"ss/md5/"
SHA256_TAG = b"ss/sha256/"

KeyKind = Literal["pdq_segment", "md5", "sha256"]


def _hex_bytes(value: str, n_bytes: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise SignalValueError(f"{what} must be hexadecimal, got {value[:80]!r}") from None
    if len(raw) != n_bytes:
        raise SignalValueError(f"{what} must be {2 * n_bytes} hex characters")
    return raw


def pdq_segment_keys(pdq_hex: str) -> list[bytes]:
    """The :data:`SEGMENTS` position-tagged segment keys of one PDQ hash."""
    raw = _hex_bytes(pdq_hex.lower(), 32, "a PDQ hash")
    step = SEGMENT_BITS // 8
    return [PDQ_TAG + bytes([i]) + raw[i * step : (i + 1) * step] for i in range(SEGMENTS)]


def md5_key(md5_hex: str) -> bytes:
    """The exact key of an MD5 digest."""
    return MD5_TAG + _hex_bytes(md5_hex.lower(), 16, "an MD5 digest")


def sha256_key(sha256_hex: str) -> bytes:
    """The exact key of a SHA-256 digest."""
    return SHA256_TAG + _hex_bytes(sha256_hex.lower(), 32, "a SHA-256 digest")


def keys_for_signal(signal_type: str, value: str) -> list[bytes]:
    """The filter keys of one bank entry; signal types the device cannot compute give []."""
    if signal_type == "pdq":
        return pdq_segment_keys(value)
    if signal_type == "md5":
        return [md5_key(value)]
    if signal_type == "sha256":
        return [sha256_key(value)]
    return []


def kind_of(key: bytes) -> KeyKind:
    """What a key is (for decisions; never logged with its value)."""
    if key.startswith(PDQ_TAG):
        return "pdq_segment"
    if key.startswith(MD5_TAG):
        return "md5"
    if key.startswith(SHA256_TAG):
        return "sha256"
    raise SignalValueError("not a device filter key")


def hamming_hex(a: str, b: str) -> int:
    """Hamming distance of two equal-length hex hashes (tests and benchmarks)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
