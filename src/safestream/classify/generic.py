"""The generic ONNX plug-in: any image classifier described by a model card file.

A partner's CSAM or age-estimation model runs without code changes: write a card
(TOML or JSON) next to the ``.onnx`` file::

    name = "partner-age"
    model = "age-v3.onnx"            # relative to the card's folder
    sha256 = "..."                   # optional: refuse any other file
    input_size = [224, 224]          # width, height
    layout = "NCHW"                  # or "NHWC"
    resize = "stretch"               # or "letterbox", "crop" (centre crop)
    channel_order = "RGB"            # or "BGR"
    pixel_range = 1.0                # pixels are scaled to 0..1 (or 255.0: 0..255)
    mean = [0.485, 0.456, 0.406]     # subtracted after scaling
    std = [0.229, 0.224, 0.225]      # divided by after that
    labels = ["adult", "minor"]      # one per output column
    output = "probabilities"         # or "softmax" (logits), "sigmoid" (multi-label logits)
    output_name = "probs"            # optional; default the first output

    [categories]                     # label -> safestream category
    minor = "minor_likely"

    [thresholds]                     # category -> threshold (default 0.5)
    minor_likely = 0.7

Every field is checked when the card is read, and the model's input and output
shapes are checked against the card when it is loaded; each error names the card
and the field.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from safestream.classify.base import CATEGORIES, Classifier, Detection, RGBImage
from safestream.classify.errors import ModelCardError, ModelShapeError
from safestream.classify.preprocess import RESIZE_MODES, Layout, ResizeMode, fit, to_tensor
from safestream.classify.runtime import DEFAULT_THREADS, OnnxSession

OUTPUT_KINDS: tuple[str, ...] = ("probabilities", "softmax", "sigmoid")
DEFAULT_THRESHOLD = 0.5
#: Largest input side a card may declare (a typo such as 22400 must not allocate GiBs).
MAX_INPUT_SIDE = 4096
_KEYS = {
    "name",
    "model",
    "sha256",
    "input_size",
    "layout",
    "resize",
    "channel_order",
    "pixel_range",
    "mean",
    "std",
    "labels",
    "output",
    "output_name",
    "categories",
    "thresholds",
    "description",
    "licence",
    "license",
}


@dataclass(frozen=True)
class ModelCard:
    """A validated model card."""

    name: str
    model_path: Path
    input_size: tuple[int, int]
    labels: tuple[str, ...]
    categories: Mapping[str, str]
    thresholds: Mapping[str, float]
    layout: Layout = "NCHW"
    resize: ResizeMode = "stretch"
    bgr: bool = False
    pixel_range: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output: str = "probabilities"
    output_name: str | None = None
    sha256: str | None = None
    description: str = ""
    licence: str = ""
    source: str = field(default="model card", compare=False)

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        """Read a ``.toml`` or ``.json`` card; the model path is relative to the card."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelCardError(f"model card {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelCardError(f"model card {path} cannot be read: {exc}") from None
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
            raise ModelCardError(f"model card {path} is not valid {kind}: {exc}") from None
        if not isinstance(data, dict):
            raise ModelCardError(f"model card {path} must be a table/object at the top level")
        return cls.from_dict(data, base_dir=path.parent, source=str(path))

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: Path, source: str = "model card"
    ) -> ModelCard:
        """Validate a parsed card; errors name the card and the field."""

        def fail(key: str, why: str) -> ModelCardError:
            return ModelCardError(f"{source}: {key}: {why}")

        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ModelCardError(f"{source}: unknown keys {unknown}; allowed: {sorted(_KEYS)}")
        for key in ("name", "model", "input_size", "labels", "categories"):
            if key not in data:
                raise fail(key, "is required")
        name = data["name"]
        if not isinstance(name, str) or not name.strip():
            raise fail("name", "must be a non-empty string")
        model = data["model"]
        if not isinstance(model, str) or not model:
            raise fail("model", "must be the path of the .onnx file (relative to the card)")
        model_path = Path(model) if Path(model).is_absolute() else base_dir / model
        size = data["input_size"]
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
            or not all(1 <= v <= MAX_INPUT_SIDE for v in size)
        ):
            raise fail("input_size", f"must be [width, height], integers 1..{MAX_INPUT_SIDE}")
        layout = data.get("layout", "NCHW")
        if layout not in ("NCHW", "NHWC"):
            raise fail("layout", f"must be 'NCHW' or 'NHWC', got {layout!r}")
        resize = data.get("resize", "stretch")
        if resize not in RESIZE_MODES:
            raise fail("resize", f"must be one of {list(RESIZE_MODES)}, got {resize!r}")
        order = data.get("channel_order", "RGB")
        if order not in ("RGB", "BGR"):
            raise fail("channel_order", f"must be 'RGB' or 'BGR', got {order!r}")
        pixel_range = data.get("pixel_range", 1.0)
        if pixel_range not in (1.0, 255.0) or isinstance(pixel_range, bool):
            raise fail("pixel_range", f"must be 1.0 (0..1) or 255.0 (0..255), got {pixel_range!r}")
        mean = _triple(data.get("mean", [0.0, 0.0, 0.0]), fail, "mean", positive=False)
        std = _triple(data.get("std", [1.0, 1.0, 1.0]), fail, "std", positive=True)
        labels = data["labels"]
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(v, str) and v for v in labels)
        ):
            raise fail("labels", "must be a non-empty list of label names")
        if len(set(labels)) != len(labels):
            raise fail("labels", "has duplicate names")
        output = data.get("output", "probabilities")
        if output not in OUTPUT_KINDS:
            raise fail("output", f"must be one of {list(OUTPUT_KINDS)}, got {output!r}")
        output_name = data.get("output_name")
        if output_name is not None and (not isinstance(output_name, str) or not output_name):
            raise fail("output_name", "must be a non-empty string")
        categories = data["categories"]
        if not isinstance(categories, dict) or not categories:
            raise fail("categories", "must be a table of label = category, at least one")
        for label, category in categories.items():
            if label not in labels:
                raise fail("categories", f"label {label!r} is not in labels {labels}")
            if category not in CATEGORIES:
                raise fail(
                    "categories",
                    f"{label!r} maps to unknown category {category!r}; known: {list(CATEGORIES)}",
                )
        raw_thresholds = data.get("thresholds", {})
        if not isinstance(raw_thresholds, dict):
            raise fail("thresholds", "must be a table of category = number")
        mapped = set(categories.values())
        thresholds: dict[str, float] = dict.fromkeys(sorted(mapped), DEFAULT_THRESHOLD)
        for category, value in raw_thresholds.items():
            if category not in mapped:
                raise fail(
                    "thresholds",
                    f"{category!r} is not a category this card maps to ({sorted(mapped)})",
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise fail("thresholds", f"{category!r} must be a number in 0..1, got {value!r}")
            thresholds[category] = float(value)
        sha = data.get("sha256")
        if sha is not None and (
            not isinstance(sha, str)
            or len(sha) != 64
            or any(c not in "0123456789abcdef" for c in sha.lower())
        ):
            raise fail("sha256", "must be 64 hex characters")
        licence = data.get("licence", data.get("license", ""))
        description = data.get("description", "")
        if not isinstance(licence, str) or not isinstance(description, str):
            raise fail("licence/description", "must be strings")
        return cls(
            name=name.strip(),
            model_path=model_path,
            input_size=(size[0], size[1]),
            labels=tuple(labels),
            categories=dict(categories),
            thresholds=thresholds,
            layout=layout,
            resize=resize,
            bgr=order == "BGR",
            pixel_range=float(pixel_range),
            mean=mean,
            std=std,
            output=output,
            output_name=output_name,
            sha256=sha.lower() if isinstance(sha, str) else None,
            description=description,
            licence=licence,
            source=source,
        )


def _triple(value: Any, fail: Any, key: str, *, positive: bool) -> tuple[float, float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise fail(key, "must be a list of 3 numbers (one per channel, in channel_order)")
    if positive and not all(v > 0 for v in value):
        raise fail(key, "must be positive")
    return (float(value[0]), float(value[1]), float(value[2]))


def _softmax(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float32] = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


class OnnxClassifier(Classifier):
    """A whole-image classifier run from a :class:`ModelCard`."""

    is_detector: ClassVar[bool] = False

    def __init__(self, card: ModelCard, *, threads: int = DEFAULT_THREADS) -> None:
        self.card = card
        self.name = card.name
        self.labels = card.labels
        self.input_size = card.input_size
        self.stretch_size = card.input_size if card.resize == "stretch" else None
        self.category_map = dict(card.categories)
        self.thresholds = dict(card.thresholds)
        self.session = OnnxSession(card.model_path, threads=threads, sha256=card.sha256)
        self._check_shapes()

    @classmethod
    def from_card(cls, path: Path, *, threads: int = DEFAULT_THREADS) -> OnnxClassifier:
        """Load the card at ``path`` and its model."""
        return cls(ModelCard.load(path), threads=threads)

    def _check_shapes(self) -> None:
        card, where = self.card, f"model {self.card.model_path} (card {self.card.source})"
        shape = self.session.input.shape
        if len(shape) != 4:
            raise ModelShapeError(
                f"{where} takes a tensor of rank {len(shape)} {shape}; an image batch has "
                "rank 4 (NCHW or NHWC)"
            )
        width, height = card.input_size
        if card.layout == "NCHW":
            channels, dims = shape[1], (shape[2], shape[3])
        else:
            channels, dims = shape[3], (shape[1], shape[2])
        if channels is not None and channels != 3:
            raise ModelShapeError(
                f"{where} takes {channels} channels in the {card.layout} channel axis; "
                "expected 3: check 'layout' in the card"
            )
        if (dims[0] is not None and dims[0] != height) or (
            dims[1] is not None and dims[1] != width
        ):
            raise ModelShapeError(
                f"{where} takes height x width {dims[0]}x{dims[1]}, but the card's "
                f"input_size is {width}x{height} (width, height): fix input_size or layout"
            )
        names = [o.name for o in self.session.outputs]
        if card.output_name is not None and card.output_name not in names:
            raise ModelShapeError(f"{where} has no output {card.output_name!r}; outputs: {names}")
        out = next(o for o in self.session.outputs if o.name == (card.output_name or names[0]))
        n_labels = len(card.labels)
        if len(out.shape) != 2 or (out.shape[1] is not None and out.shape[1] != n_labels):
            raise ModelShapeError(
                f"{where}: output {out.name!r} has shape {out.shape}; the card lists "
                f"{n_labels} labels, so (batch, {n_labels}) is expected"
            )

    def preprocess(self, images: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """Fit and normalise checked RGB frames into the model's input batch."""
        card = self.card
        fitted = [fit(im, card.input_size, card.resize)[0] for im in images]
        return to_tensor(
            fitted,
            layout=card.layout,
            mean=card.mean,
            std=card.std,
            pixel_scale=card.pixel_range / 255.0,
            bgr=card.bgr,
        )

    def predict_batch(
        self, images: Sequence[RGBImage]
    ) -> list[tuple[dict[str, float], tuple[Detection, ...]]]:
        """Scores per label for each frame."""
        raw = self.session.run(self.preprocess(images), self.card.output_name)
        n_labels = len(self.labels)
        if raw.ndim != 2 or raw.shape != (len(images), n_labels):
            raise ModelShapeError(
                f"model {self.card.model_path} returned shape {raw.shape} for {len(images)} "
                f"images; the card lists {n_labels} labels, so ({len(images)}, {n_labels}) "
                "was expected"
            )
        if not np.isfinite(raw).all():
            raise ModelShapeError(f"model {self.card.model_path} returned NaN or infinite scores")
        if self.card.output == "softmax":
            probs = _softmax(raw)
        elif self.card.output == "sigmoid":
            probs = (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)
        else:
            probs = np.clip(raw, 0.0, 1.0)
        return [
            ({label: float(row[i]) for i, label in enumerate(self.labels)}, ()) for row in probs
        ]


__all__ = ["DEFAULT_THRESHOLD", "OUTPUT_KINDS", "ModelCard", "OnnxClassifier"]
