"""The Classifier interface: input forms, categories, not-assessed, combining."""

from __future__ import annotations

import numpy as np
import pytest

from safestream.classify import (
    CATEGORIES,
    Classification,
    ClassifierInputError,
    as_rgb,
    combine_scores,
    flagged_categories,
    not_assessed,
)
from safestream.classify.base import category_scores
from safestream.classify.calibration import threshold_for
from safestream.signals.image import BACKGROUND


def test_categories_are_fixed() -> None:
    assert CATEGORIES == (
        "explicit_nudity",
        "suggestive",
        "minor_likely",
        "csam",
        "drawn_explicit",
    )
    assert not_assessed() == dict.fromkeys(CATEGORIES)


def test_unmapped_categories_are_none_never_zero() -> None:
    scores = category_scores({"a": 0.0, "b": 0.3, "c": 0.9}, {"a": "csam", "b": "suggestive"})
    assert scores["csam"] == 0.0
    assert scores["suggestive"] == 0.3
    for category in ("explicit_nudity", "minor_likely", "drawn_explicit"):
        assert scores[category] is None


def test_category_takes_highest_label() -> None:
    scores = category_scores({"x": 0.2, "y": 0.7}, {"x": "explicit_nudity", "y": "explicit_nudity"})
    assert scores["explicit_nudity"] == 0.7


def test_combine_keeps_none_only_when_no_model_assessed() -> None:
    a = Classification("a", {}, {**not_assessed(), "explicit_nudity": 0.1})
    b = Classification("b", {}, {**not_assessed(), "explicit_nudity": 0.6, "minor_likely": 0.0})
    merged = combine_scores([a, b])
    assert merged["explicit_nudity"] == 0.6
    assert merged["minor_likely"] == 0.0
    assert merged["csam"] is None
    assert combine_scores([]) == not_assessed()


def test_flagged_categories() -> None:
    scores = {**not_assessed(), "explicit_nudity": 0.8, "suggestive": 0.79}
    thresholds = {"explicit_nudity": 0.8, "suggestive": 0.8, "csam": 0.1}
    assert flagged_categories(scores, thresholds) == ("explicit_nudity",)


def test_as_rgb_forms() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert as_rgb(rgb) is rgb
    grey = np.array([[0, 128], [255, 7]], dtype=np.uint8)
    out = as_rgb(grey)
    assert out.shape == (2, 2, 3)
    assert (out[..., 0] == grey).all() and (out[..., 2] == grey).all()
    assert as_rgb(grey[..., None]).shape == (2, 2, 3)
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[0, 1] = (10, 20, 30, 0)  # transparent: the decoder's white background
    out = as_rgb(rgba)
    assert tuple(out[0, 0]) == (10, 20, 30)
    assert tuple(out[0, 1]) == BACKGROUND
    assert as_rgb(np.zeros((1, 1, 3), np.uint8)).shape == (1, 1, 3)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (np.zeros((4, 4, 3), np.float64), "must be uint8"),
        (np.zeros((4, 4, 2), np.uint8), "(H, W)"),
        (np.zeros((4, 0, 3), np.uint8), "empty"),
        (np.zeros((4,), np.uint8), "(H, W)"),
        ([[1, 2]], "numpy array"),
    ],
)
def test_as_rgb_rejects(value: object, fragment: str) -> None:
    with pytest.raises(ClassifierInputError, match=None) as info:
        as_rgb(value)
    assert fragment in str(info.value)


def test_as_rgb_pixel_limit() -> None:
    big = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ClassifierInputError, match="over the limit"):
        as_rgb(big, max_pixels=9_999)
    assert as_rgb(big, max_pixels=10_000).shape == (100, 100, 3)


def test_threshold_for_is_strictly_below_rate() -> None:
    scores = [0.01] * 597 + [0.5, 0.6, 0.7]
    # 3 of 600 is 0.5 %: not below it, so the threshold must exclude all three but 2.
    t = threshold_for(scores, 0.005)
    assert sum(s >= t for s in scores) / len(scores) < 0.005
    assert threshold_for([0.0] * 10) == 0.05
    assert threshold_for([0.99] * 10) == 1.0
