"""RFC 9497 OPRF, mode 0x00 (OPRF), ciphersuite ristretto255-SHA512.

The group arithmetic is libsodium's (through ``rbcl``, which bundles it, so no
system library is needed); the protocol around it (hash-to-group with
``expand_message_xmd``, key derivation, blinding, finalisation) follows RFC 9497
section 3 and is checked against the RFC's test vectors in
``tests/device/test_oprf.py``.

Both halves live here because a device and a server are two ends of one
protocol; the device only ever needs :func:`blind` and :func:`finalize`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from safestream.errors import ConfigError, InputError

try:
    import rbcl as _rb  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigError(
        "the on-device check needs the 'device' extra: pip install 'safestream[device]'"
    ) from exc

MODE_OPRF = 0x00
SUITE_ID = b"ristretto255-SHA512"
#: RFC 9497 section 3.1: "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier.
CONTEXT_STRING = b"OPRFV1-" + bytes([MODE_OPRF]) + b"-" + SUITE_ID
ELEMENT_BYTES = 32
SCALAR_BYTES = 32
OUTPUT_BYTES = 64
#: Inputs are length-prefixed with two bytes (RFC 9497 section 3.3.1).
MAX_INPUT_BYTES = 0xFFFF


class OprfError(InputError):
    """An OPRF value (element, scalar or input) is invalid."""


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-512 (block 128 bytes, output 64 bytes)."""
    if len(dst) > 255:
        raise OprfError("domain separation tag is longer than 255 bytes")
    ell = -(-length // 64)
    if ell > 255 or length > 0xFFFF:
        raise OprfError("requested length is too long for expand_message_xmd")
    dst_prime = dst + _i2osp(len(dst), 1)
    b0 = hashlib.sha512(bytes(128) + msg + _i2osp(length, 2) + _i2osp(0, 1) + dst_prime).digest()
    blocks = [hashlib.sha512(b0 + _i2osp(1, 1) + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(a ^ b for a, b in zip(b0, blocks[-1], strict=True))
        blocks.append(hashlib.sha512(mixed + _i2osp(i, 1) + dst_prime).digest())
    return b"".join(blocks)[:length]


def hash_to_group(msg: bytes) -> bytes:
    """HashToGroup: expand to 64 bytes, then ristretto255's one-way map."""
    uniform = expand_message_xmd(msg, b"HashToGroup-" + CONTEXT_STRING, 64)
    return bytes(_rb.crypto_core_ristretto255_from_hash(uniform))


def hash_to_scalar(msg: bytes, dst: bytes | None = None) -> bytes:
    """HashToScalar: expand to 64 bytes and reduce modulo the group order."""
    uniform = expand_message_xmd(msg, dst or b"HashToScalar-" + CONTEXT_STRING, 64)
    return bytes(_rb.crypto_core_ristretto255_scalar_reduce(uniform))


_ZERO_SCALAR = bytes(SCALAR_BYTES)


def derive_key_pair(seed: bytes, info: bytes) -> tuple[bytes, bytes]:
    """DeriveKeyPair (RFC 9497 section 3.2.1): the secret scalar and public element."""
    if len(seed) != 32:
        raise OprfError("the seed must be 32 bytes")
    derive_input = seed + _i2osp(len(info), 2) + info
    dst = b"DeriveKeyPair" + CONTEXT_STRING
    for counter in range(256):
        sk = hash_to_scalar(derive_input + _i2osp(counter, 1), dst)
        if sk != _ZERO_SCALAR:
            return sk, public_key(sk)
    raise OprfError("DeriveKeyPair failed: no non-zero scalar in 256 tries")  # pragma: no cover


def public_key(secret: bytes) -> bytes:
    """The public element ``secret * G``."""
    return bytes(_rb.crypto_scalarmult_ristretto255_base(_check_scalar(secret)))


def random_scalar() -> bytes:
    """A uniformly random non-zero scalar."""
    while True:
        s = bytes(_rb.crypto_core_ristretto255_scalar_reduce(secrets.token_bytes(64)))
        if s != _ZERO_SCALAR:
            return s


def _check_scalar(s: bytes) -> bytes:
    if not isinstance(s, bytes) or len(s) != SCALAR_BYTES:
        raise OprfError(f"a scalar is {SCALAR_BYTES} bytes")
    if s == _ZERO_SCALAR or bytes(_rb.crypto_core_ristretto255_scalar_reduce(s + bytes(32))) != s:
        raise OprfError("the scalar is zero or not reduced modulo the group order")
    return s


def check_element(e: bytes) -> bytes:
    """Deserialise-and-validate (RFC 9497 section 2.1): a canonical, non-identity element."""
    if not isinstance(e, bytes) or len(e) != ELEMENT_BYTES:
        raise OprfError(f"an element is {ELEMENT_BYTES} bytes")
    if e == bytes(ELEMENT_BYTES) or not _rb.crypto_core_ristretto255_is_valid_point(e):
        raise OprfError("not a valid ristretto255 element (or the identity)")
    return e


def _mul(s: bytes, e: bytes) -> bytes:
    try:
        return bytes(_rb.crypto_scalarmult_ristretto255(s, e))
    except RuntimeError:
        raise OprfError("scalar multiplication gave the identity element") from None


@dataclass(frozen=True)
class Blinded:
    """The device's state for one input: keep ``blind`` secret, send ``element``."""

    input: bytes
    blind: bytes
    element: bytes


def blind(input_: bytes, blind_scalar: bytes | None = None) -> Blinded:
    """Blind (RFC 9497 section 3.3.1); ``blind_scalar`` only for test vectors."""
    if len(input_) > MAX_INPUT_BYTES:
        raise OprfError("OPRF input is longer than 65535 bytes")
    r = _check_scalar(blind_scalar) if blind_scalar is not None else random_scalar()
    point = hash_to_group(input_)
    if point == bytes(ELEMENT_BYTES):
        raise OprfError("the input hashes to the identity element")  # pragma: no cover
    return Blinded(input_, r, _mul(r, point))


def blind_evaluate(secret: bytes, blinded_element: bytes) -> bytes:
    """BlindEvaluate (server): ``secret * blindedElement`` after validating the element."""
    return _mul(_check_scalar(secret), check_element(blinded_element))


def _finalize_hash(input_: bytes, unblinded: bytes) -> bytes:
    return hashlib.sha512(
        _i2osp(len(input_), 2) + input_ + _i2osp(len(unblinded), 2) + unblinded + b"Finalize"
    ).digest()


def finalize(state: Blinded, evaluated_element: bytes) -> bytes:
    """Finalize (device): unblind and hash; the 64-byte OPRF output."""
    inverse = bytes(_rb.crypto_core_ristretto255_scalar_invert(state.blind))
    unblinded = _mul(inverse, check_element(evaluated_element))
    return _finalize_hash(state.input, unblinded)


def evaluate(secret: bytes, input_: bytes) -> bytes:
    """Evaluate (RFC 9497 section 3.3.1): the server's own unblinded evaluation."""
    point = hash_to_group(input_)
    return _finalize_hash(input_, _mul(_check_scalar(secret), point))


def key_id(public: bytes) -> str:
    """A short public identifier of an OPRF key (first 16 hex of SHA-256 of ``pkS``)."""
    return hashlib.sha256(b"safestream-oprf-key" + public).hexdigest()[:16]


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare secrets without leaking where they differ."""
    return hmac.compare_digest(a, b)
