"""Filter building, signing and verification; tampering is always refused."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from safestream.device import DeviceServer, SignedFilter, build_filter, oprf, verify_filter
from safestream.device.bloom import BloomFilter, false_positive_rate
from safestream.device.filter import FilterVerificationError
from safestream.device.keys import SEGMENTS, pdq_segment_keys
from safestream.errors import NotFoundError


def _random_pdq() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="module")
def signing() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def built(signing: SigningKey) -> tuple[SignedFilter, bytes, list[str]]:
    secret = oprf.random_scalar()
    hashes = [_random_pdq() for _ in range(50)]
    signed = build_filter(
        [("pdq", h) for h in hashes] + [("md5", "0" * 32), ("video_md5", "1" * 32)],
        oprf_secret=secret,
        signing_key=bytes(signing),
        version=3,
        banks=["b"],
    )
    return signed, secret, hashes


def test_build_and_verify(
    built: tuple[SignedFilter, bytes, list[str]], signing: SigningKey
) -> None:
    signed, secret, hashes = built
    verified = verify_filter(signed, bytes(signing.verify_key))
    h = verified.header
    assert (h.version, h.pdq_entries, h.exact_entries) == (3, 50, 1)
    assert h.key_count == 50 * SEGMENTS + 1
    assert h.oprf_key_id == oprf.key_id(oprf.public_key(secret))
    # No false negatives: every inserted key is found.
    outs = [oprf.evaluate(secret, k) for hh in hashes for k in pdq_segment_keys(hh)]
    assert all(verified.bloom.contains(outs))
    # The raw keys (not OPRF outputs) are not what the filter holds.
    raw = [k for hh in hashes[:5] for k in pdq_segment_keys(hh)]
    assert not any(verified.bloom.contains([k + bytes(16) for k in raw]))


def test_filter_bytes_hold_no_hash(built: tuple[SignedFilter, bytes, list[str]]) -> None:
    signed, _, hashes = built
    for h in hashes:
        assert bytes.fromhex(h) not in signed.data
        assert h.encode() not in signed.data


@pytest.mark.parametrize("where", ["magic", "header", "body_start", "body_end"])
def test_tampered_filter_rejected(
    built: tuple[SignedFilter, bytes, list[str]], signing: SigningKey, where: str
) -> None:
    signed, _, _ = built
    data = bytearray(signed.data)
    index = {"magic": 0, "header": 20, "body_start": len(data) - 200, "body_end": len(data) - 1}[
        where
    ]
    data[index] ^= 0x01
    with pytest.raises(FilterVerificationError, match="signature"):
        verify_filter(SignedFilter(bytes(data), signed.signature), bytes(signing.verify_key))


def test_tampered_signature_and_wrong_key_rejected(
    built: tuple[SignedFilter, bytes, list[str]], signing: SigningKey
) -> None:
    signed, _, _ = built
    sig = bytearray(signed.signature)
    sig[5] ^= 0x80
    with pytest.raises(FilterVerificationError):
        verify_filter(SignedFilter(signed.data, bytes(sig)), bytes(signing.verify_key))
    other = SigningKey.generate()
    with pytest.raises(FilterVerificationError):
        verify_filter(signed, bytes(other.verify_key))
    # Re-signed by another key after tampering: still refused with the pinned key.
    forged = bytearray(signed.data)
    forged[-1] ^= 1
    resigned = SignedFilter(bytes(forged), other.sign(bytes(forged)).signature)
    with pytest.raises(FilterVerificationError):
        verify_filter(resigned, bytes(signing.verify_key))


def test_signed_but_inconsistent_body_rejected(signing: SigningKey) -> None:
    """Even a valid signature over a body that does not match its header hash is refused."""
    secret = oprf.random_scalar()
    good = build_filter(
        [("md5", "a" * 32)], oprf_secret=secret, signing_key=bytes(signing), version=1
    )
    data = bytearray(good.data)
    data[-1] ^= 1
    resigned = SignedFilter(bytes(data), signing.sign(bytes(data)).signature)
    with pytest.raises(FilterVerificationError, match="body"):
        verify_filter(resigned, bytes(signing.verify_key))


def test_bloom_false_positive_rate_is_near_design() -> None:
    bloom = BloomFilter.for_keys(2000, bits_per_key=8)  # weak on purpose, to measure it
    bloom.add([secrets.token_bytes(64) for _ in range(2000)])
    probes = [secrets.token_bytes(64) for _ in range(20000)]
    rate = sum(bloom.contains(probes)) / len(probes)
    expected = false_positive_rate(bloom.m_bits, 2000, bloom.k)
    assert rate < 3 * expected + 0.002


def test_server_files_are_private_and_atomic(tmp_path: Path) -> None:
    srv = DeviceServer(tmp_path / "device")
    with pytest.raises(NotFoundError, match="publish"):
        srv.current()
    with pytest.raises(NotFoundError, match="keygen"):
        srv.oprf_key_id()
    info = srv.keygen()
    assert len(bytes.fromhex(info["public_key"])) == 32
    for name in (srv.OPRF_KEY, srv.SIGNING_KEY):
        mode = stat.S_IMODE(os.stat(srv.directory / name).st_mode)
        assert mode == 0o600, name
    first = srv.publish([("md5", "b" * 32)], ["x"])
    second = srv.publish([("md5", "c" * 32)], ["x"])
    assert (first.version, second.version) == (1, 2)
    assert srv.current().version == 2
    assert not [p for p in srv.directory.iterdir() if p.name.endswith(".tmp")]
    # A key file others can read is refused.
    os.chmod(srv.directory / srv.OPRF_KEY, 0o644)
    from safestream.errors import ConfigError

    with pytest.raises(ConfigError, match="chmod 600"):
        DeviceServer(srv.directory).oprf_key_id()
    # keygen without --rotate keeps the keys.
    os.chmod(srv.directory / srv.OPRF_KEY, 0o600)
    assert DeviceServer(srv.directory).keygen() == info
