"""``to_tensor``: the float batch a classifier gets, against the formula written out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from safestream.classify.preprocess import to_tensor


def reference(
    images: list[Any], *, layout: str, mean: Any, std: Any, pixel_scale: float, bgr: bool
) -> Any:
    """Pixel by pixel: channel ``c`` of the output is ``(x[c'] * scale - mean[c]) / std[c]``
    with ``c'`` the input channel (reversed for BGR)."""
    n, h, w = len(images), *images[0].shape[:2]
    out = np.empty((n, h, w, 3), dtype=np.float32)
    for i, image in enumerate(images):
        for c in range(3):
            src = image[..., 2 - c] if bgr else image[..., c]
            value = src.astype(np.float32)
            if pixel_scale != 1.0:
                value = value * np.float32(pixel_scale)
            value = value - np.float32(mean[c])
            if std[c] != 1.0:
                value = value / np.float32(std[c])
            out[i, ..., c] = value
    return out.transpose(0, 3, 1, 2) if layout == "NCHW" else out


@pytest.mark.parametrize(
    ("layout", "mean", "std", "scale", "bgr"),
    [
        ("NHWC", (104.0, 117.0, 123.0), (1.0, 1.0, 1.0), 1.0, True),  # opennsfw (Caffe)
        ("NCHW", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1 / 255, False),  # ImageNet
        ("NCHW", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1 / 255, True),
        ("NHWC", (127.5, 127.5, 127.5), (127.5, 2.0, 1.0), 1.0, False),
    ],
)
def test_to_tensor_matches_the_formula_and_is_contiguous(
    layout: Any, mean: Any, std: Any, scale: float, bgr: bool
) -> None:
    rng = np.random.default_rng(7)
    # Distinct channels (a gradient in each) so that a channel mix-up cannot pass.
    images = [rng.integers(0, 256, (31, 17, 3), dtype=np.uint8) for _ in range(2)]
    images[0][..., 0] = 0
    images[0][..., 2] = 255
    got = to_tensor(images, layout=layout, mean=mean, std=std, pixel_scale=scale, bgr=bgr)
    want = reference(images, layout=layout, mean=mean, std=std, pixel_scale=scale, bgr=bgr)
    assert got.dtype == np.float32
    assert got.flags.c_contiguous
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_to_tensor_does_not_touch_its_inputs() -> None:
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    before = image.copy()
    to_tensor([image], layout="NHWC", mean=(1, 2, 3), std=(1, 1, 1), pixel_scale=1.0, bgr=True)
    np.testing.assert_array_equal(image, before)
