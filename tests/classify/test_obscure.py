"""Interventions: obscured pixels cannot be brought back; boxes, margins, bad input."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageFilter

from safestream.classify import ClassifierInputError
from safestream.classify.obscure import (
    black_out,
    blur,
    obscure,
    overlay_warning,
    pixelate,
    regions,
)
from safestream.signals.pdq import pdq_from_rgb
from safestream.signals.synthetic import photo_like


def pdq_distance(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> int:
    ha, hb = pdq_from_rgb(a)[0], pdq_from_rgb(b)[0]
    return bin(int(ha, 16) ^ int(hb, 16)).count("1")


def psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float(10 * np.log10(255**2 / max(mse, 1e-9)))


def attempts_to_recover(obscured: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.uint8]]:
    """What an attacker would try: smoothing the blocks away, sharpening, upsampling."""
    pil = Image.fromarray(obscured)
    h, w = obscured.shape[:2]
    return [
        obscured,
        np.asarray(pil.filter(ImageFilter.GaussianBlur(max(h, w) / 16))),
        np.asarray(pil.filter(ImageFilter.UnsharpMask(radius=4, percent=300))),
        np.asarray(
            pil.resize((w // 16, h // 16), Image.Resampling.BOX).resize(
                (w, h), Image.Resampling.BICUBIC
            )
        ),
    ]


@pytest.fixture(scope="module")
def photos() -> list[npt.NDArray[np.uint8]]:
    images = [photo_like(s, 640, 480) for s in range(3)]
    try:
        from skimage import data

        images += [data.astronaut(), data.coffee(), data.chelsea()]
    except ImportError:
        pass
    return images


@pytest.mark.parametrize("method", ["pixelate", "blur"])
def test_obscured_frames_cannot_be_recovered(
    photos: list[npt.NDArray[np.uint8]], method: str
) -> None:
    for i, original in enumerate(photos):
        obscured = obscure(original, method, rng=np.random.default_rng(i))
        for attempt in attempts_to_recover(obscured):
            # PDQ's match threshold is 31 bits; recovered frames land far past it.
            assert pdq_distance(original, attempt) > 64
            assert psnr(original, attempt) < 23.0
        # The test can tell: a faint blur (reversible, weak) stays a PDQ match.
        faint = np.asarray(Image.fromarray(original).filter(ImageFilter.GaussianBlur(2)))
        assert pdq_distance(original, faint) <= 31


def test_pixelate_keeps_few_values(photos: list[npt.NDArray[np.uint8]]) -> None:
    original = photos[0]
    out = pixelate(original, rng=np.random.default_rng(0))
    colours = np.unique(out.reshape(-1, 3), axis=0)
    assert len(colours) <= 8 * 8 * 2  # 8 blocks on the short side of 640x480 -> 8 x 11
    assert set(np.unique(out) % 16) == {8}  # quantised to steps of 16


def test_noise_is_not_replayable_by_default(photos: list[npt.NDArray[np.uint8]]) -> None:
    a, b = pixelate(photos[0]), pixelate(photos[0])
    assert not np.array_equal(a, b)
    seeded = [pixelate(photos[0], rng=np.random.default_rng(5)) for _ in range(2)]
    assert np.array_equal(seeded[0], seeded[1])


@pytest.mark.parametrize("method", ["pixelate", "blur", "black"])
def test_boxes_change_only_their_region(method: str) -> None:
    frame = photo_like(9, 400, 300)
    box = (100, 50, 80, 60)
    out = obscure(frame, method, [box], rng=np.random.default_rng(1))
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert frame is not out
    top, bottom, left, right = regions(frame.shape, [box])[0]
    # The margin grows the region by 10 % of the box on each side.
    assert (top, bottom, left, right) == (44, 116, 92, 188)
    outside = np.ones(frame.shape[:2], bool)
    outside[top:bottom, left:right] = False
    assert np.array_equal(out[outside], frame[outside])
    assert psnr(frame[top:bottom, left:right], out[top:bottom, left:right]) < 25
    # The input is never modified.
    assert np.array_equal(frame, photo_like(9, 400, 300))


def test_empty_box_list_changes_nothing() -> None:
    frame = photo_like(2, 100, 80)
    assert np.array_equal(pixelate(frame, []), frame)


def test_black_out() -> None:
    frame = photo_like(4, 120, 90)
    assert (black_out(frame) == 0).all()
    out = black_out(frame, [(0, 0, 10, 10)], colour=(255, 0, 255), margin=0)
    assert (out[:10, :10] == (255, 0, 255)).all()
    assert np.array_equal(out[10:], frame[10:])


def test_tiny_and_grey_and_boxes_outside() -> None:
    one = np.zeros((1, 1, 3), np.uint8)
    for method in ("pixelate", "blur", "black"):
        assert obscure(one, method).shape == (1, 1, 3)
    grey = np.full((30, 40), 200, np.uint8)
    assert pixelate(grey).shape == (30, 40, 3)
    frame = photo_like(1, 50, 50)
    assert np.array_equal(pixelate(frame, [(500, 500, 10, 10)]), frame)  # clipped away
    assert pixelate(frame, [(-20, -20, 40, 40)]).shape == frame.shape


def test_warning_overlay() -> None:
    frame = photo_like(3, 640, 360)
    out = overlay_warning(frame, "Hidden")
    middle = out[170:190]
    assert (middle == 255).any()  # white text
    assert np.array_equal(out[:100], frame[:100])  # only the middle band changes
    combined = obscure(frame, "black", warning="Hidden")
    assert (combined[175:185] == 255).any()
    assert overlay_warning(np.zeros((1, 1, 3), np.uint8)).shape == (1, 1, 3)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda f: obscure(f, "smear"), "method must be one of"),
        (lambda f: pixelate(f, [(0, 0, 10)]), "a box is"),  # type: ignore[list-item]
        (lambda f: pixelate(f, [(0, 0, -1, 5)]), "negative size"),
        (lambda f: pixelate(f, cells=0), "cells"),
        (lambda f: blur(f, noise=500), "noise"),
        (lambda f: black_out(f, colour=(0, 0, 300)), "colour"),
        (lambda f: pixelate(f.astype(np.float32)), "uint8"),
        (lambda f: pixelate(f, [(0, 0, 5, 5)], margin=3), "margin"),
    ],
)
def test_bad_arguments(call: object, fragment: str) -> None:
    frame = photo_like(0, 32, 32)
    with pytest.raises(ClassifierInputError) as info:
        call(frame)  # type: ignore[operator]
    assert fragment in str(info.value)
