"""Classifiers and interventions: score images for safestream's categories, obscure frames.

``import safestream.classify`` needs no optional dependency; loading a model needs
the ``classify`` extra (onnxruntime and the default model's package)::

    from safestream.classify import load_classifier, classify_file, obscure

    model = load_classifier()                       # the default bundled model
    result = classify_file(model, "photo.jpg")
    result.category_scores    # {"explicit_nudity": 0.01, "minor_likely": None, ...}
    result.flagged            # categories at or over the model's thresholds

A category no loaded model assesses is ``None`` (not assessed), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from safestream.classify.base import (
    CATEGORIES,
    CategoryScores,
    Classification,
    Classifier,
    Detection,
    as_rgb,
    combine_scores,
    flagged_categories,
    not_assessed,
    shared_stretch_size,
)
from safestream.classify.errors import (
    ClassifierInputError,
    MissingExtraError,
    ModelCardError,
    ModelError,
    ModelLoadError,
    ModelNotFoundError,
    ModelShapeError,
    UnknownModelError,
)
from safestream.classify.obscure import METHODS, obscure
from safestream.signals.hashing import DEFAULT_MAX_FILE_BYTES
from safestream.signals.image import decode_rgb


def load_classifier(
    name: str | None = None, *, card: Path | str | None = None, threads: int = 1
) -> Classifier:
    """A bundled model by ``name`` (default: ``opennsfw``) or a model ``card`` file."""
    if card is not None:
        if name is not None:
            raise ModelError("give a bundled model name or a model card, not both")
        from safestream.classify.generic import OnnxClassifier

        return OnnxClassifier.from_card(Path(card), threads=threads)
    from safestream.classify.bundled import DEFAULT_MODEL, load_bundled

    return load_bundled(name or DEFAULT_MODEL, threads=threads)


def classify_bytes(
    classifier: Classifier, data: bytes, *, max_pixels: int | None = None
) -> Classification:
    """Decode image bytes (every Pillow mode, EXIF, bomb limits) and classify them."""
    _, rgb = decode_rgb(data, max_pixels=max_pixels)
    return classifier.classify(rgb)


def classify_file(
    classifier: Classifier,
    path: Path | str,
    *,
    max_pixels: int | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Classification:
    """Read, decode and classify an image file."""
    from safestream.errors import FileTooLargeError, InputError

    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_file_bytes:
            raise FileTooLargeError(f"{p} is {size:,} bytes, over the limit of {max_file_bytes:,}")
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{p} is a directory, not an image file") from None
    except PermissionError:
        raise InputError(f"{p} cannot be read (permission denied)") from None
    return classify_bytes(classifier, data, max_pixels=max_pixels)


def assess(
    classifiers: Sequence[Classifier], image: object
) -> tuple[list[Classification], CategoryScores]:
    """Run every classifier on one image; per-model results and merged category scores."""
    results = [c.classify(image) for c in classifiers]
    return results, combine_scores(results)


__all__ = [
    "CATEGORIES",
    "METHODS",
    "CategoryScores",
    "Classification",
    "Classifier",
    "ClassifierInputError",
    "Detection",
    "MissingExtraError",
    "ModelCardError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelShapeError",
    "UnknownModelError",
    "as_rgb",
    "assess",
    "classify_bytes",
    "classify_file",
    "combine_scores",
    "flagged_categories",
    "load_classifier",
    "not_assessed",
    "obscure",
    "shared_stretch_size",
]
