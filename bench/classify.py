"""Benchmark the bundled classifiers: frames/s per core at 720p, and false positives.

For each bundled model that is installed (``opennsfw``: extra ``classify``;
``nudenet``: extra ``classify-nudenet``):

* **speed**: 1280x720 RGB frames (as the live monitor gets them from the decoder)
  through ``Classifier.classify_batch`` -- preprocessing (resize, the model's own
  normalisation) + onnxruntime + post-processing -- with ``intra_op_num_threads=1``
  (one core) at batch sizes 1, 4 and 8, and with 2 threads at batch 1 for
  comparison. Figures are the median per-frame time over rounds; preprocessing
  alone is timed too;
* **false positives**: the share of the benign set flagged with the model's default
  thresholds, the highest benign score per category, and the lowest threshold on a
  0.05 grid that keeps the rate below 0.5 %. The benign set is every image of
  scikit-image's ``data`` module that loads offline (incl. the 200 LFW face crops)
  plus 400 synthetic drawings and photo-like frames. It holds nothing explicit, so
  every flag is a false positive; it says nothing about detection of real explicit
  content, which is the model provider's claim.

Run: ``.venv/bin/python bench/classify.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from safestream.classify import load_classifier
from safestream.classify.base import Classifier
from safestream.classify.bundled import BUNDLED, DEFAULT_MODEL, bundled_status
from safestream.classify.calibration import (
    MAX_FALSE_POSITIVE_RATE,
    measure,
    skimage_images,
    synthetic_images,
    threshold_for,
)
from safestream.signals.synthetic import photo_like

TARGET_FPS_PER_CORE = 25.0


def per_frame_ms(fn: object, frames: list[np.ndarray], batch: int, rounds: int) -> float:
    """Median milliseconds per frame of ``fn(batch_of_frames)`` over ``rounds``."""
    call = fn  # a callable taking a list of frames
    times = []
    call([frames[0]] * batch)  # type: ignore[operator]  # warm-up
    for r in range(rounds):
        chunk = [frames[(r * batch + i) % len(frames)] for i in range(batch)]
        start = time.perf_counter()
        call(chunk)  # type: ignore[operator]
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times) * 1000.0


def preprocess_fn(model: Classifier) -> object | None:
    pre = getattr(model, "preprocess", None)
    if pre is not None:
        return pre
    if model.name == "nudenet":
        from safestream.classify.preprocess import fit, to_tensor

        def nudenet_pre(frames: list[np.ndarray]) -> object:
            fitted = [fit(f, model.input_size, "letterbox")[0] for f in frames]
            return to_tensor(
                fitted, layout="NCHW", mean=(0, 0, 0), std=(1, 1, 1), pixel_scale=1 / 255
            )

        return nudenet_pre
    return None


def speed(name: str, frames: list[np.ndarray], rounds: int) -> list[str]:
    rows = []
    model = load_classifier(name, threads=1)
    pre = preprocess_fn(model)
    pre_ms = per_frame_ms(pre, frames, 1, rounds) if pre else float("nan")
    for batch in (1, 4, 8):
        ms = per_frame_ms(model.classify_batch, frames, batch, max(3, rounds // batch))
        fps = 1000.0 / ms
        mark = "yes" if fps >= TARGET_FPS_PER_CORE else "**no**"
        rows.append(
            f"| {name} | 1 | {batch} | {ms:.1f} | {pre_ms:.1f} | {fps:.1f} | {fps:.1f} | {mark} |"
        )
    model2 = load_classifier(name, threads=2)
    ms = per_frame_ms(model2.classify_batch, frames, 1, rounds)
    rows.append(
        f"| {name} | 2 | 1 | {ms:.1f} | {pre_ms:.1f} | {1000 / ms:.1f} | {500 / ms:.1f} | - |"
    )
    return rows


def false_positives(name: str, n_synthetic: int) -> list[str]:
    images = skimage_images() + list(synthetic_images(n_synthetic))
    model = load_classifier(name)
    result = measure(model, images)
    rows = []
    for category, scores in result.scores.items():
        worst = sorted(zip(scores, [n for n, _ in images], strict=True), reverse=True)[:3]
        hits = sum(1 for v in result.flagged.values() if category in v)
        rows.append(
            f"| {name} | {category} | {model.thresholds.get(category, float('nan')):.2f} | "
            f"{hits}/{result.n_images} ({100 * hits / result.n_images:.2f} %) | "
            + ", ".join(f"{s:.3f} ({n})" for s, n in worst)
            + f" | {threshold_for(scores, MAX_FALSE_POSITIVE_RATE):.2f} |"
        )
    rows.append(
        f"| {name} | any | - | {len(result.flagged)}/{result.n_images} "
        f"({100 * result.rate:.2f} %) | {sorted(result.flagged)[:5]} | - |"
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and images")
    args = parser.parse_args()
    rounds = 10 if args.quick else 40
    n_synthetic = 60 if args.quick else 400
    status = bundled_status()
    names = [n for n in BUNDLED if status[n]["installed"]]
    missing = [n for n in BUNDLED if not status[n]["installed"]]
    if missing:
        print(f"not installed (skipped): {missing}", file=sys.stderr)
    frames = [photo_like(seed, 1280, 720) for seed in range(8)]
    print(f"default model: {DEFAULT_MODEL}; target {TARGET_FPS_PER_CORE:.0f} frames/s per core\n")
    print(
        "| model | threads | batch | ms/frame (incl. preprocessing) | of which "
        "preprocessing | frames/s | frames/s per core | ≥ 25/core |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        for row in speed(name, frames, rounds):
            print(row, flush=True)
    print(
        "\n| model | category | default threshold | benign flagged | highest benign scores "
        "| lowest threshold < 0.5 % |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        for row in false_positives(name, n_synthetic):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
