"""The benign set and false-positive measurement used to calibrate default thresholds.

The benign set is every image of scikit-image's ``data`` module that loads offline
(photos of people, animals, objects, astronomy, microscopy, text; the LFW face
crops) plus synthetic drawings and photo-like frames. Nothing in it is explicit,
so every flag on it is a false positive. It says nothing about how well a model
detects real explicit content: that is the model provider's claim.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from safestream.classify.base import CATEGORIES, Classifier, RGBImage

#: Default target: at most this share of benign images flagged.
MAX_FALSE_POSITIVE_RATE = 0.005


def _to_uint8(array: Any) -> RGBImage | None:
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        v = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(v.min()), float(v.max())
        if lo >= 0.0 and hi <= 1.0:
            v = v * 255.0
        elif hi > lo:
            v = (v - lo) * (255.0 / (hi - lo))
        arr = np.clip(np.rint(v), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        return None
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        return None
    if arr.shape[2] == 4:
        from safestream.classify.base import as_rgb

        return as_rgb(np.ascontiguousarray(arr))
    return np.ascontiguousarray(arr)


def skimage_images(data: ModuleType | None = None) -> list[tuple[str, RGBImage]]:
    """Every 2-D grey or RGB(A) image of ``skimage.data`` that loads without a download."""
    if data is None:
        import skimage.data as data  # the 'bench' / 'dev' extra

    out: list[tuple[str, RGBImage]] = []
    for name in sorted(getattr(data, "__all__", [])):
        fn = getattr(data, name, None)
        if not callable(fn) or name in ("download_all", "file_hash", "data_dir"):
            continue
        try:
            value = fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            # Needs pooch / a download, not available offline. Under pytest scikit-image
            # raises pytest's Skipped (a BaseException) instead of an error.
            continue
        values = value if isinstance(value, tuple) else (value,)
        for i, item in enumerate(values):
            arr = np.asarray(item) if not isinstance(item, str) else None
            if arr is None:
                continue
            if name == "lfw_subset" and arr.ndim == 3:
                for j, face in enumerate(arr):
                    img = _to_uint8(face)
                    if img is not None:
                        out.append((f"{name}[{j}]", img))
                continue
            img = _to_uint8(arr)
            if img is not None:
                label = name if len(values) == 1 else f"{name}[{i}]"
                out.append((label, img))
    return out


def synthetic_images(count: int, seed: int = 0) -> Iterator[tuple[str, RGBImage]]:
    """``count`` synthetic frames: drawings (the demo's) and photo-like fields, varied sizes."""
    from safestream.demo import synthetic_image
    from safestream.signals.synthetic import photo_like

    sizes = [(640, 480), (1280, 720), (480, 640), (320, 320), (1024, 576)]
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        if i % 2 == 0:
            yield f"drawing-{seed + i}", np.asarray(synthetic_image(seed + i, (w, h)))
        else:
            yield f"photo_like-{seed + i}", photo_like(seed + i, w, h)


@dataclass(frozen=True)
class FalsePositives:
    """Flags of one classifier on a benign set."""

    model: str
    n_images: int
    #: Image name -> categories flagged there.
    flagged: dict[str, tuple[str, ...]]
    #: Category -> scores on every image (for calibration).
    scores: dict[str, list[float]] = field(repr=False)

    @property
    def rate(self) -> float:
        """Share of images with at least one flagged category."""
        return len(self.flagged) / self.n_images if self.n_images else 0.0

    def max_score(self, category: str) -> float | None:
        """Highest score of ``category`` on the set (None: not assessed)."""
        values = self.scores.get(category)
        return max(values) if values else None


def measure(
    classifier: Classifier,
    images: Iterable[tuple[str, RGBImage]],
    thresholds: dict[str, float] | None = None,
    batch_size: int = 8,
) -> FalsePositives:
    """Classify every benign image; which got flagged under ``thresholds``."""
    limits = dict(classifier.thresholds if thresholds is None else thresholds)
    flagged: dict[str, tuple[str, ...]] = {}
    scores: dict[str, list[float]] = {c: [] for c in CATEGORIES if c in classifier.categories}
    n = 0
    pending: list[tuple[str, RGBImage]] = []

    def flush() -> None:
        names = [p[0] for p in pending]
        results = classifier.classify_batch([im for _, im in pending])
        for name, result in zip(names, results, strict=True):
            hits = []
            for category in scores:
                value = result.category_scores[category] or 0.0
                scores[category].append(value)
                if category in limits and value >= limits[category]:
                    hits.append(category)
            if hits:
                flagged[name] = tuple(hits)
        pending.clear()

    for item in images:
        pending.append(item)
        n += 1
        if len(pending) >= batch_size:
            flush()
    flush()
    return FalsePositives(classifier.name, n, flagged, scores)


def threshold_for(
    scores: Sequence[float], max_rate: float = MAX_FALSE_POSITIVE_RATE, step: float = 0.05
) -> float:
    """Lowest threshold on a ``step`` grid that flags at most ``max_rate`` of ``scores``.

    The grid step leaves headroom above the worst tolerated benign score.
    """
    # Strictly below max_rate: 3 of 628 (0.48 %) is allowed at 0.5 %, 3 of 600 is not.
    allowed = max(0, math.ceil(max_rate * len(scores)) - 1)
    ranked = sorted(scores, reverse=True)
    worst_kept = ranked[allowed] if allowed < len(ranked) else 0.0
    threshold = math.floor(worst_kept / step) * step + step
    return round(min(1.0, threshold), 4)


__all__ = [
    "MAX_FALSE_POSITIVE_RATE",
    "FalsePositives",
    "measure",
    "skimage_images",
    "synthetic_images",
    "threshold_for",
]
