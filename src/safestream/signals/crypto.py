"""Cryptographic digests of the original bytes: MD5, SHA-1, SHA-256.

Hotlines share MD5 and SHA-1 lists of known files; they match only the exact
file, so they are cheap and have no false positives.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from safestream.signals.base import BytesHasher, ExactSignalType, register


@register
class MD5Signal(ExactSignalType, BytesHasher):
    """MD5 of the file bytes (128 bits)."""

    name: ClassVar[str] = "md5"
    hash_length_bits: ClassVar[int] = 128

    @classmethod
    def hash_bytes(cls, data: bytes) -> str:
        """MD5 hex digest."""
        return hashlib.md5(data, usedforsecurity=False).hexdigest()


@register
class SHA1Signal(ExactSignalType, BytesHasher):
    """SHA-1 of the file bytes (160 bits)."""

    name: ClassVar[str] = "sha1"
    hash_length_bits: ClassVar[int] = 160

    @classmethod
    def hash_bytes(cls, data: bytes) -> str:
        """SHA-1 hex digest."""
        return hashlib.sha1(data, usedforsecurity=False).hexdigest()


@register
class SHA256Signal(ExactSignalType, BytesHasher):
    """SHA-256 of the file bytes (256 bits)."""

    name: ClassVar[str] = "sha256"
    hash_length_bits: ClassVar[int] = 256

    @classmethod
    def hash_bytes(cls, data: bytes) -> str:
        """SHA-256 hex digest."""
        return hashlib.sha256(data).hexdigest()
