"""The classifier plug-in interface: RGB pixels in, label and category scores out.

A :class:`Classifier` declares its ``labels``, its ``input_size`` and which of
safestream's :data:`CATEGORIES` each label maps to. Its output, a
:class:`Classification`, has a score per label, boxes when the model is a detector,
and a score per category. A category that no label of the model maps to is
**not assessed** (``None``), never 0: "this model cannot see minors" must not read
as "no minor here".

This module imports neither onnxruntime nor any model, so the engine and the
policy can use the names here without the ``classify`` extra.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from safestream.classify.errors import ClassifierInputError
from safestream.signals.image import DEFAULT_MAX_PIXELS, to_rgb

#: safestream's categories, in a fixed order.
CATEGORIES: tuple[str, ...] = (
    "explicit_nudity",
    "suggestive",
    "minor_likely",
    "csam",
    "drawn_explicit",
)

#: Category name -> score in [0, 1], or None when no loaded model assessed it.
CategoryScores = dict[str, float | None]

RGBImage = npt.NDArray[np.uint8]


def not_assessed() -> CategoryScores:
    """Every category, none assessed."""
    return dict.fromkeys(CATEGORIES)


@dataclass(frozen=True)
class Detection:
    """One box of a detector, in pixels of the image that was classified."""

    label: str
    score: float
    #: Left, top, width, height in pixels (integers, clipped to the image).
    box: tuple[int, int, int, int]
    category: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "label": self.label,
            "score": round(self.score, 6),
            "box": list(self.box),
            "category": self.category,
        }


@dataclass(frozen=True)
class Classification:
    """What one model said about one image."""

    model: str
    #: Every label of the model -> score in [0, 1].
    label_scores: Mapping[str, float]
    #: Every category of :data:`CATEGORIES` -> score, or None (not assessed).
    category_scores: CategoryScores
    #: Boxes (detectors only), best first.
    detections: tuple[Detection, ...] = ()
    #: Categories whose score reached the model's threshold.
    flagged: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "model": self.model,
            "scores": {k: _round(v) for k, v in self.category_scores.items()},
            "flagged": list(self.flagged),
            "labels": {k: round(v, 6) for k, v in self.label_scores.items()},
            "detections": [d.to_dict() for d in self.detections],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def category_scores(
    label_scores: Mapping[str, float], category_map: Mapping[str, str]
) -> CategoryScores:
    """Each category's score is the highest score of the labels mapped to it.

    Categories with no label mapped to them stay None (not assessed).
    """
    scores = not_assessed()
    for label, category in category_map.items():
        value = float(label_scores.get(label, 0.0))
        current = scores[category]
        scores[category] = value if current is None else max(current, value)
    return scores


def flagged_categories(
    scores: Mapping[str, float | None], thresholds: Mapping[str, float]
) -> tuple[str, ...]:
    """Categories whose score is at least their threshold, in :data:`CATEGORIES` order."""
    return tuple(
        c
        for c in CATEGORIES
        if (s := scores.get(c)) is not None and c in thresholds and s >= thresholds[c]
    )


def combine_scores(results: Iterable[Classification]) -> CategoryScores:
    """Merge several models' category scores: the highest per category.

    A category stays None only when no model assessed it.
    """
    merged = not_assessed()
    for result in results:
        for category, value in result.category_scores.items():
            if value is None:
                continue
            current = merged.get(category)
            merged[category] = value if current is None else max(current, value)
    return merged


def as_rgb(image: Any, *, max_pixels: int | None = None) -> RGBImage:
    """Check and convert a numpy image to (H, W, 3) uint8 RGB.

    Accepts uint8 arrays of shape (H, W) (grey), (H, W, 1), (H, W, 3) (RGB) and
    (H, W, 4) (RGBA, composited on white as the decoder does). Anything else, an
    empty image, or one over ``max_pixels`` (default: the decoder's bomb limit)
    raises :class:`ClassifierInputError`.
    """
    if not isinstance(image, np.ndarray):
        raise ClassifierInputError(
            f"an image must be a numpy array, got {type(image).__name__}; "
            "decode files with safestream.classify.classify_bytes / classify_file"
        )
    if image.dtype != np.uint8:
        raise ClassifierInputError(
            f"an image array must be uint8 (0..255), got {image.dtype}; convert it first"
        )
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ClassifierInputError(
            f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}"
        )
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ClassifierInputError(f"the image is empty ({width}x{height})")
    if height * width > limit:
        raise ClassifierInputError(
            f"the image has {width}x{height} = {width * height:,} pixels, over the limit "
            f"of {limit:,}"
        )
    if image.ndim == 3 and image.shape[2] == 3:
        checked: RGBImage = image
        return checked
    rgb: RGBImage = to_rgb(Image.fromarray(np.ascontiguousarray(image)))
    return rgb


def shared_stretch_size(classifiers: Iterable[Classifier]) -> tuple[int, int] | None:
    """The :attr:`Classifier.stretch_size` all ``classifiers`` share, else None (none
    given, one keeps the aspect ratio, or they stretch to different sizes): the size to
    scale a video frame to once before classifying it with all of them."""
    sizes = {c.stretch_size for c in classifiers}
    if len(sizes) != 1:
        return None
    (size,) = sizes
    return size


class Classifier(ABC):
    """A classifier plug-in: one model, loaded once, used for many images.

    Subclasses set the class attributes or instance attributes below and implement
    :meth:`predict_batch`. :meth:`classify` and :meth:`classify_batch` check the input
    and fill in categories and flags.
    """

    #: Short unique name ("opennsfw", "nudenet", a model card's name).
    name: str = ""
    #: Every label the model outputs, in output order.
    labels: tuple[str, ...] = ()
    #: The model's input size as (width, height) in pixels.
    input_size: tuple[int, int] = (0, 0)
    #: (width, height) that preprocessing first stretches every image to, ignoring its
    #: aspect ratio; None when it keeps the aspect (letterbox, crop). A caller that
    #: scales frames itself (video, live samples) can hand frames already at this size:
    #: one resample from the decoded picture instead of two (see
    #: :func:`shared_stretch_size`).
    stretch_size: tuple[int, int] | None = None
    #: Label -> safestream category; labels not listed map to no category.
    category_map: Mapping[str, str] = {}
    #: Category -> default threshold in [0, 1] (calibrated on benign images).
    thresholds: Mapping[str, float] = {}
    #: True when the model gives boxes.
    is_detector: ClassVar[bool] = False

    @property
    def categories(self) -> frozenset[str]:
        """The categories this model assesses."""
        return frozenset(self.category_map.values())

    @abstractmethod
    def predict_batch(
        self, images: Sequence[RGBImage]
    ) -> list[tuple[dict[str, float], tuple[Detection, ...]]]:
        """Label scores (every label) and detections for each checked RGB image."""

    def classify(self, image: Any) -> Classification:
        """Classify one RGB (or grey / RGBA) uint8 image."""
        return self.classify_batch([image])[0]

    def classify_batch(self, images: Sequence[Any]) -> list[Classification]:
        """Classify several images at once (one model call where the model allows)."""
        checked = [as_rgb(im) for im in images]
        if not checked:
            return []
        results = []
        for label_scores, detections in self.predict_batch(checked):
            scores = category_scores(label_scores, self.category_map)
            results.append(
                Classification(
                    model=self.name,
                    label_scores=label_scores,
                    category_scores=scores,
                    detections=detections,
                    flagged=flagged_categories(scores, self.thresholds),
                )
            )
        return results

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: labels, input size, categories, thresholds."""
        return {
            "name": self.name,
            "labels": list(self.labels),
            "input_size": list(self.input_size),
            "is_detector": self.is_detector,
            "category_map": dict(self.category_map),
            "categories": sorted(self.categories),
            "thresholds": dict(self.thresholds),
        }


__all__ = [
    "CATEGORIES",
    "CategoryScores",
    "Classification",
    "Classifier",
    "Detection",
    "RGBImage",
    "as_rgb",
    "category_scores",
    "combine_scores",
    "flagged_categories",
    "not_assessed",
    "shared_stretch_size",
]
