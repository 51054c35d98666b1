"""PDQ computation: exact path is pdqhash itself; fast path stays close to it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pdqhash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safestream.errors import ImageError
from safestream.signals.pdq import (
    DEFAULT_MIN_QUALITY,
    DEFAULT_PDQ_THRESHOLD,
    PDQSignal,
    bits_to_hex,
    fast_pdq_from_pixels,
    pdq_dihedral_from_rgb,
    pdq_from_rgb,
)
from safestream.signals.synthetic import photo_like

hex_hashes = st.binary(min_size=32, max_size=32).map(bytes.hex)


def test_constants_kept() -> None:
    assert DEFAULT_MIN_QUALITY == 50
    assert DEFAULT_PDQ_THRESHOLD == 31


@pytest.mark.parametrize(("width", "height"), [(5, 5), (64, 48), (320, 240), (641, 479)])
def test_exact_is_bit_identical_to_pdqhash(width: int, height: int) -> None:
    rgb = photo_like(width * 7 + height, width, height)
    bits, quality = pdqhash.compute(rgb)
    assert pdq_from_rgb(rgb) == (bits_to_hex(bits), quality)
    hashes, dq = pdq_dihedral_from_rgb(rgb)
    assert hashes[0] == bits_to_hex(bits) and dq == quality and len(hashes) == 8


def test_hex_format(photo: npt.NDArray[np.uint8]) -> None:
    value, quality = pdq_from_rgb(photo)
    assert len(value) == 64 and value == value.lower() and PDQSignal.parse(value) == value
    assert 0 <= quality <= 100


def test_flat_image_has_quality_zero() -> None:
    flat = np.full((100, 120, 3), 128, np.uint8)
    assert pdq_from_rgb(flat)[1] == 0
    assert fast_pdq_from_pixels(flat)[1] == 0


@pytest.mark.parametrize("shape", [(1, 1, 3), (4, 100, 3), (100, 4, 3)])
def test_slivers_hash_like_the_reference(shape: tuple[int, int, int]) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    exact = pdq_from_rgb(rgb)
    assert exact == ("0" * 64, 0)
    assert fast_pdq_from_pixels(rgb)[:2] == exact


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_bad_arrays_raise_image_error(bad: npt.NDArray[np.generic]) -> None:
    with pytest.raises(ImageError):
        pdq_from_rgb(bad)  # type: ignore[arg-type]


_DIHEDRAL_OPS = (  # numpy equivalents of pdqhash's dihedral order
    lambda a: a,
    lambda a: np.rot90(a, 1),  # rot90 is counter-clockwise
    lambda a: np.rot90(a, 2),
    lambda a: np.rot90(a, 3),
    lambda a: a[::-1],  # flipX mirrors top-bottom
    lambda a: a[:, ::-1],  # flipY mirrors left-right
    lambda a: a.transpose(1, 0, 2),  # flip+1
    lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # flip-1
)


def test_dihedral_set_matches_transformed_copies_exactly_on_a_symmetric_grid() -> None:
    # 320 px: PDQ's box windows (3) and sample points are symmetric, so a transformed
    # copy hashes to exactly the predicted dihedral hash.
    square = photo_like(5, 320, 320)
    hashes, _ = pdq_dihedral_from_rgb(square)
    for op, expected in zip(_DIHEDRAL_OPS, hashes, strict=True):
        got, _ = pdq_from_rgb(np.ascontiguousarray(op(square)))
        assert got == expected


def test_rotated_copies_match_within_threshold(photo: npt.NDArray[np.uint8]) -> None:
    # Elsewhere PDQ's even box windows are off-centre by a pixel, so the reference
    # itself drifts a few bits for rotated copies; still well inside the threshold.
    hashes, _ = pdq_dihedral_from_rgb(photo)
    for op, expected in zip(_DIHEDRAL_OPS[1:], hashes[1:], strict=True):
        got, _ = pdq_from_rgb(np.ascontiguousarray(op(photo)))
        assert PDQSignal.distance(got, hashes[0]) > DEFAULT_PDQ_THRESHOLD
        assert PDQSignal.matches(got, expected)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    # Below ~64 px PDQ upsamples: many DCT values tie with the median, and float
    # rounding alone decides those bits.
    width=st.integers(64, 400),
    height=st.integers(64, 400),
)
def test_fast_full_resolution_is_within_float_rounding(seed: int, width: int, height: int) -> None:
    rgb = photo_like(seed, width, height)
    exact, quality = pdq_from_rgb(rgb)
    exact_dihedral, _ = pdq_dihedral_from_rgb(rgb)
    fast, fast_quality, fast_dihedral = fast_pdq_from_pixels(rgb, dihedral=True)
    assert abs(fast_quality - quality) <= 1
    if quality >= DEFAULT_MIN_QUALITY:
        assert PDQSignal.distance(fast, exact) <= 4
        for a, b in zip(exact_dihedral, fast_dihedral, strict=True):
            assert PDQSignal.distance(a, b) <= 4


def test_fast_reduced_by_block_means_is_close(photo: npt.NDArray[np.uint8]) -> None:
    exact, _ = pdq_from_rgb(photo)
    h, w, _ = photo.shape
    for block in (2, 4):
        means = photo.reshape(h // block, block, w // block, block, 3).mean(axis=(1, 3))
        luma = means @ np.array([0.299, 0.587, 0.114])
        fast, _, _ = fast_pdq_from_pixels(luma, full_shape=(h, w), block=block)
        assert PDQSignal.distance(fast, exact) <= 8


@pytest.mark.parametrize(("width", "height"), [(2000, 100), (100, 2000), (3000, 6), (6, 3000)])
def test_fast_on_slivers_is_close(width: int, height: int) -> None:
    rgb = photo_like(3, width, height)
    exact, quality = pdq_from_rgb(rgb)
    fast, fast_quality, _ = fast_pdq_from_pixels(rgb)
    assert abs(fast_quality - quality) <= 1
    assert PDQSignal.distance(exact, fast) <= 4


@given(a=hex_hashes, b=hex_hashes, c=hex_hashes)
def test_distance_is_a_metric(a: str, b: str, c: str) -> None:
    d = PDQSignal.distance
    assert d(a, a) == 0
    assert d(a, b) == d(b, a)
    assert d(a, c) <= d(a, b) + d(b, c)
    popcount = sum(
        bin(x ^ y).count("1") for x, y in zip(bytes.fromhex(a), bytes.fromhex(b), strict=True)
    )
    assert d(a, b) == popcount


@given(a=hex_hashes)
def test_parse_canonicalises(a: str) -> None:
    assert PDQSignal.parse(a.upper()) == a


@pytest.mark.parametrize(
    ("shape", "full", "block"),
    [
        ((180, 320), (720, 1280), 4),  # a 720p frame's luma in 4x4 blocks (live samples)
        ((300, 200, 3), None, 1),  # small RGB
        ((90, 160), (720, 1280), 8),
        ((500, 375, 3), (4000, 3000), 8),  # a JPEG decoded with DCT scaling
        ((40, 1000), None, 1),  # a sliver
    ],
)
def test_gathered_blur_gives_the_slab_loop_hashes(
    shape: tuple[int, ...],
    full: tuple[int, int] | None,
    block: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small inputs take two einsum calls instead of 128: the same hashes, bit for bit."""
    import safestream.signals.pdq as pdq_module

    rng = np.random.default_rng(sum(shape))
    for smooth in (False, True):
        img = rng.random(shape) * 255
        if smooth:
            img = np.cumsum(np.cumsum(rng.normal(size=shape), 0), 1) * 3 + 128
        pixels = np.clip(img, 0, 255).astype(np.uint8)
        gathered = fast_pdq_from_pixels(pixels, full_shape=full, block=block, dihedral=True)
        with monkeypatch.context() as m:
            m.setattr(pdq_module, "_GATHER_MAX_PIXELS", 0)
            looped = fast_pdq_from_pixels(pixels, full_shape=full, block=block, dihedral=True)
        assert gathered == looped
