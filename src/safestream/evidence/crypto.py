"""AES-256-GCM with a key ring: key ids, key loading, authenticated sealing.

Keys come from ``SAFESTREAM_EVIDENCE_KEYS`` (``id:base64key,id2:base64key``) or
a key file named by ``SAFESTREAM_EVIDENCE_KEY_FILE`` (one ``id:base64key`` per
line, ``#`` comments). Each key is 32 random bytes. The **first** key is the
active one (new objects, rotation target); the others are kept only to read
objects not yet re-encrypted. Generate one with ``safestream evidence new-key``
or ``python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"``.

A sealed blob is ``nonce (12 bytes) || ciphertext+tag``; the associated data
binds the object id and key id, so a blob moved to another object, or
relabelled with another key id, fails authentication instead of decrypting.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safestream.errors import ConfigError
from safestream.evidence.errors import EvidenceIntegrityError, EvidenceKeyError

ENV_KEYS = "SAFESTREAM_EVIDENCE_KEYS"
ENV_KEY_FILE = "SAFESTREAM_EVIDENCE_KEY_FILE"
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def new_key() -> str:
    """A fresh random key, base64."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


@dataclass(frozen=True)
class KeyRing:
    """Evidence keys by id; ``active_id`` encrypts new objects."""

    keys: Mapping[str, bytes]
    active_id: str

    def __post_init__(self) -> None:
        if self.active_id not in self.keys:
            raise ConfigError(f"the active evidence key {self.active_id!r} is not in the key ring")
        for key_id, key in self.keys.items():
            if not _KEY_ID.match(key_id):
                raise ConfigError(
                    f"evidence key id {key_id!r} must be 1-64 of letters, digits, '_', '.', '-'"
                )
            if len(key) != KEY_BYTES:
                raise ConfigError(
                    f"evidence key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )

    @classmethod
    def parse(cls, text: str, *, source: str) -> KeyRing:
        """Keys from ``id:base64`` entries separated by commas or new lines."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for raw in re.split(r"[,\n]", text):
            entry = raw.split("#", 1)[0].strip()
            if not entry:
                continue
            if ":" not in entry:
                raise ConfigError(f"{source}: each evidence key is 'id:base64key', got no ':'")
            key_id, b64 = (p.strip() for p in entry.split(":", 1))
            try:
                key = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"{source}: key {key_id!r} is not valid base64") from None
            if key_id in keys:
                raise ConfigError(f"{source}: key id {key_id!r} appears twice")
            keys[key_id] = key
            order.append(key_id)
        if not order:
            raise ConfigError(f"{source}: no evidence keys found")
        return cls(keys, order[0])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing:
        """The key ring from the environment; ConfigError says what to set when missing."""
        env = os.environ if environ is None else environ
        inline = env.get(ENV_KEYS, "").strip()
        path = env.get(ENV_KEY_FILE, "").strip()
        if inline:
            return cls.parse(inline, source=ENV_KEYS)
        if path:
            try:
                text = Path(path).read_text("utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read {ENV_KEY_FILE} {path}: {exc.strerror}") from exc
            return cls.parse(text, source=path)
        raise ConfigError(
            f"no evidence key configured: set {ENV_KEYS}='id:base64key' or {ENV_KEY_FILE} "
            "(generate a key with 'safestream evidence new-key')"
        )

    def key(self, key_id: str) -> bytes:
        """The key with this id, or EvidenceKeyError."""
        try:
            return self.keys[key_id]
        except KeyError:
            raise EvidenceKeyError(
                f"evidence key {key_id!r} is not configured; add it to {ENV_KEYS} or "
                f"{ENV_KEY_FILE} (keep old keys until 'safestream evidence rotate-key' ran)"
            ) from None


def aad(kind: str, object_id: str, key_id: str) -> bytes:
    """Associated data binding a blob to its object, key and role (content or metadata)."""
    return f"safestream-evidence/v1/{kind}/{object_id}/{key_id}".encode()


def seal(ring: KeyRing, key_id: str, plaintext: bytes, associated: bytes) -> bytes:
    """Encrypt and authenticate: nonce || ciphertext+tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(ring.key(key_id)).encrypt(nonce, plaintext, associated)


def open_sealed(ring: KeyRing, key_id: str, blob: bytes, associated: bytes, *, what: str) -> bytes:
    """Decrypt a sealed blob; EvidenceIntegrityError if it was altered or the key is wrong."""
    key = ring.key(key_id)
    if len(blob) < NONCE_BYTES + 16:
        raise EvidenceIntegrityError(f"{what}: the stored ciphertext is truncated")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)
    except InvalidTag:
        raise EvidenceIntegrityError(
            f"{what}: authentication failed: the ciphertext was altered, belongs to another "
            f"object, or key {key_id!r} is not the key it was encrypted with; nothing was "
            "returned. Check storage and key configuration, restore from backup."
        ) from None
