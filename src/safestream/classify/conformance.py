"""Conformance kit: checks every :class:`Classifier` plug-in must pass.

Call :func:`check_classifier` from a plug-in's tests (``tests/classify`` runs it on
every bundled model that is installed and on a model-card model). Each check raises
``AssertionError`` naming the plug-in and the broken promise; the kit needs no test
framework. The images are benign synthetic drawings only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from safestream.classify.base import CATEGORIES, Classification, Classifier, RGBImage
from safestream.classify.errors import ClassifierInputError
from safestream.signals.synthetic import photo_like

#: How far batch and single results may differ (onnxruntime may pick other kernels).
BATCH_TOLERANCE = 1e-3


def benign_images(seed: int = 0) -> list[RGBImage]:
    """Synthetic frames of assorted sizes and aspect ratios, 1x1 included."""
    sizes = [(320, 240), (1280, 720), (97, 301), (64, 64), (1, 1), (3, 500)]
    return [photo_like(seed + i, w, h) for i, (w, h) in enumerate(sizes)]


def check_declaration(classifier: Classifier) -> None:
    """Name, labels, input size, category map and thresholds are declared and consistent."""
    name = classifier.name
    assert name and name.strip() == name, f"bad classifier name {name!r}"
    labels = classifier.labels
    assert labels and len(set(labels)) == len(labels), f"{name}: labels empty or duplicated"
    width, height = classifier.input_size
    assert width > 0 and height > 0, f"{name}: input_size must be positive (width, height)"
    assert classifier.category_map, f"{name}: maps no label to a category"
    for label, category in classifier.category_map.items():
        assert label in labels, f"{name}: category_map names unknown label {label!r}"
        assert category in CATEGORIES, f"{name}: unknown category {category!r}"
    for category, threshold in classifier.thresholds.items():
        assert category in classifier.categories, (
            f"{name}: threshold for {category!r}, a category it does not assess"
        )
        assert 0.0 <= threshold <= 1.0, f"{name}: threshold of {category} outside 0..1"


def check_result(classifier: Classifier, result: Classification, image: RGBImage) -> None:
    """One result: every label and category present, None exactly where not assessed."""
    name = classifier.name
    assert result.model == name, f"{name}: result names model {result.model!r}"
    assert set(result.label_scores) == set(classifier.labels), f"{name}: labels missing"
    for label, score in result.label_scores.items():
        assert isinstance(score, float) and 0.0 <= score <= 1.0, (
            f"{name}: score of {label} is {score!r}, not a float in 0..1"
        )
    assert tuple(result.category_scores) == CATEGORIES, f"{name}: categories missing or unordered"
    for category, value in result.category_scores.items():
        if category in classifier.categories:
            assert value is not None and 0.0 <= value <= 1.0, (
                f"{name}: assessed category {category} has score {value!r}"
            )
        else:
            assert value is None, (
                f"{name}: {category} is not assessed by this model and must be None, not {value!r}"
            )
    for category in result.flagged:
        flagged_score = result.category_scores[category]
        assert flagged_score is not None and flagged_score >= classifier.thresholds[category], (
            f"{name}: flagged {category} below its threshold"
        )
    for category, threshold in classifier.thresholds.items():
        value = result.category_scores[category]
        if value is not None and value >= threshold:
            assert category in result.flagged, f"{name}: {category} over threshold not flagged"
    if not classifier.is_detector:
        assert not result.detections, f"{name}: not a detector but returned boxes"
    height, width = image.shape[:2]
    for d in result.detections:
        assert d.label in classifier.labels, f"{name}: box with unknown label {d.label!r}"
        assert 0.0 <= d.score <= 1.0, f"{name}: box score {d.score} outside 0..1"
        x, y, w, h = d.box
        assert x >= 0 and y >= 0 and w > 0 and h > 0, f"{name}: degenerate box {d.box}"
        assert x + w <= width and y + h <= height, f"{name}: box {d.box} outside the image"


def check_outputs(classifier: Classifier, images: Sequence[RGBImage]) -> None:
    """Results are well formed, and a batch gives what single calls give."""
    name = classifier.name
    batch = classifier.classify_batch(images)
    assert len(batch) == len(images), f"{name}: {len(images)} images, {len(batch)} results"
    assert classifier.classify_batch([]) == [], f"{name}: an empty batch must give []"
    for image, together in zip(images, batch, strict=True):
        check_result(classifier, together, image)
        alone = classifier.classify(image)
        for label in classifier.labels:
            diff = abs(alone.label_scores[label] - together.label_scores[label])
            assert diff <= BATCH_TOLERANCE, f"{name}: batch and single differ on {label} by {diff}"


def check_input_forms(classifier: Classifier, seed: int = 0) -> None:
    """Grey, single-channel and RGBA arrays are accepted; grey equals its RGB copy."""
    name = classifier.name
    rgb = photo_like(seed, 200, 150)
    grey = rgb.mean(axis=2).astype(np.uint8)
    as_grey = classifier.classify(grey)
    as_rgb_grey = classifier.classify(np.repeat(grey[..., None], 3, axis=2))
    for label in classifier.labels:
        assert abs(as_grey.label_scores[label] - as_rgb_grey.label_scores[label]) < 1e-6, (
            f"{name}: a grey image and its RGB copy differ"
        )
    classifier.classify(grey[..., None])
    opaque = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    a, b = classifier.classify(opaque), classifier.classify(rgb)
    for label in classifier.labels:
        assert abs(a.label_scores[label] - b.label_scores[label]) < 1e-6, (
            f"{name}: an opaque RGBA image and its RGB differ"
        )


def check_bad_input(classifier: Classifier) -> None:
    """Bad arrays raise :class:`ClassifierInputError`, never another exception."""
    name = classifier.name
    bad: list[tuple[object, str]] = [
        (np.zeros((10, 10, 3), np.float32), "float array"),
        (np.zeros((10, 10, 2), np.uint8), "two channels"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((2, 2, 2, 3), np.uint8), "rank 4"),
        (np.zeros(10, np.uint8), "rank 1"),
        ("image.jpg", "a path string"),
        (None, "None"),
    ]
    for value, why in bad:
        try:
            classifier.classify(value)
        except ClassifierInputError as exc:
            assert str(exc), f"{name}: ClassifierInputError for {why} has no message"
            continue
        except Exception as exc:
            raise AssertionError(
                f"{name}: {why} raised {type(exc).__name__}, expected ClassifierInputError"
            ) from exc
        raise AssertionError(f"{name}: {why} was accepted")


def check_classifier(classifier: Classifier, images: Sequence[RGBImage] | None = None) -> None:
    """Run every conformance check (default images: :func:`benign_images`)."""
    check_declaration(classifier)
    check_outputs(classifier, images if images is not None else benign_images())
    check_input_forms(classifier)
    check_bad_input(classifier)


__all__ = [
    "BATCH_TOLERANCE",
    "benign_images",
    "check_bad_input",
    "check_classifier",
    "check_declaration",
    "check_input_forms",
    "check_outputs",
    "check_result",
]
