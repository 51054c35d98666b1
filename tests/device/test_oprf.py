"""The OPRF against RFC 9497's test vectors, and its algebraic properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safestream.device import oprf

# RFC 9497, Appendix A.1.1: OPRF(ristretto255, SHA-512), mode 0x00 (OPRF).
SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")  # "test key"
SK_SM = "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e"
BLIND = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706"
VECTORS = [
    {
        "input": "00",
        "blinded": "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        "evaluated": "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
        "output": (
            "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
            "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6"
        ),
    },
    {
        "input": "5a" * 17,
        "blinded": "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        "evaluated": "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
        "output": (
            "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
            "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73"
        ),
    },
]


def test_context_string() -> None:
    assert oprf.CONTEXT_STRING == b"OPRFV1-\x00-ristretto255-SHA512"


def test_derive_key_pair_matches_rfc() -> None:
    sk, pk = oprf.derive_key_pair(SEED, KEY_INFO)
    assert sk.hex() == SK_SM
    assert pk == oprf.public_key(sk)


@pytest.mark.parametrize("vector", VECTORS, ids=["input-00", "input-5a17"])
def test_rfc9497_vectors(vector: dict[str, str]) -> None:
    sk = bytes.fromhex(SK_SM)
    state = oprf.blind(bytes.fromhex(vector["input"]), bytes.fromhex(BLIND))
    assert state.element.hex() == vector["blinded"]
    evaluated = oprf.blind_evaluate(sk, state.element)
    assert evaluated.hex() == vector["evaluated"]
    assert oprf.finalize(state, evaluated).hex() == vector["output"]
    # The server's direct evaluation gives the same output (RFC 9497 Evaluate).
    assert oprf.evaluate(sk, bytes.fromhex(vector["input"])).hex() == vector["output"]


def test_expand_message_xmd_rfc9380_vector() -> None:
    # RFC 9380, Appendix K.3: expand_message_xmd(SHA-512), msg "abcdef0123456789", 32 bytes.
    out = oprf.expand_message_xmd(
        b"abcdef0123456789", b"QUUX-V01-CS02-with-expander-SHA512-256", 32
    )
    assert out.hex() == "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58"


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=64))
def test_blinding_hides_input_but_output_is_deterministic(data: bytes) -> None:
    sk = oprf.random_scalar()
    a, b = oprf.blind(data), oprf.blind(data)
    # Fresh blinds: the same input never gives the same element twice ...
    assert a.element != b.element
    assert a.element != oprf.hash_to_group(data)
    # ... yet both unblind to the one PRF value.
    out_a = oprf.finalize(a, oprf.blind_evaluate(sk, a.element))
    out_b = oprf.finalize(b, oprf.blind_evaluate(sk, b.element))
    assert out_a == out_b == oprf.evaluate(sk, data)
    # A different key gives an unrelated output.
    assert oprf.evaluate(oprf.random_scalar(), data) != out_a


@pytest.mark.parametrize(
    "bad",
    [bytes(32), b"\xff" * 32, b"\x01" * 31, b"\x00" * 33],
    ids=["identity", "non-canonical", "short", "long"],
)
def test_server_rejects_invalid_elements(bad: bytes) -> None:
    with pytest.raises(oprf.OprfError):
        oprf.blind_evaluate(oprf.random_scalar(), bad)


def test_zero_and_unreduced_scalars_rejected() -> None:
    point = oprf.hash_to_group(b"x")
    with pytest.raises(oprf.OprfError):
        oprf.blind_evaluate(bytes(32), point)
    with pytest.raises(oprf.OprfError):
        oprf.blind_evaluate(b"\xff" * 32, point)
