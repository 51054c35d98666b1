"""Benchmark image hashing: images/s of ``exact`` and ``fast`` against the HMA baseline.

Baseline: full decode with Pillow, ``convert("RGB")``, ``pdqhash.compute`` — the path
HMA / python-threatexchange use.  In the same run, on the same images, in turn:

* ``baseline``  — the above (PDQ only);
* ``exact``     — ``hash_bytes(mode="exact")`` (PDQ + MD5 + SHA-1 + SHA-256);
* ``fast``      — ``hash_bytes(mode="fast")`` (PDQ + MD5 + SHA-1 + SHA-256);
* ``fast-pdq``  — the fast decode + hash alone, to compare like with like.

It prints images/s (median per-image time over rounds), the ratios to the baseline,
and the distribution of Hamming distances between fast and exact hashes
(min / median / p95 / max bits) over a larger set of images.

Images are synthetic photo-like fields (``safestream.signals.synthetic``) and, when
scikit-image is installed (``pip install scikit-image``; benchmark only), its bundled
benign photos, resized.  Encoded files are cached under ``bench/out/``.

Run: ``.venv/bin/python bench/hashing.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image

from safestream.signals.hashing import hash_bytes
from safestream.signals.image import decode_scaled
from safestream.signals.pdq import PDQSignal, fast_pdq_from_pixels
from safestream.signals.synthetic import photo_like

OUT = Path(__file__).resolve().parent / "out"
SIZES = [(512, 512), (1024, 768), (1920, 1080), (4000, 3000)]
SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "horse",
    "clock",
    "coins",
    "moon",
)


def benign_photos() -> list[npt.NDArray[np.uint8]]:
    """scikit-image's bundled benign photos as RGB arrays (empty if not installed)."""
    try:
        from skimage import data
    except ImportError:
        return []
    out = []
    for name in SKIMAGE_PHOTOS:
        try:
            arr = np.asarray(getattr(data, name)())
        except Exception:  # a data file that needs a download: skip it
            continue
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(arr[..., :3].astype(np.uint8)))
    return out


def corpus(width: int, height: int, n: int, seed: int = 0) -> list[npt.NDArray[np.uint8]]:
    """``n`` images of ``width`` x ``height``: alternately synthetic and benign photos."""
    photos = benign_photos()
    images = []
    for i in range(n):
        if photos and i % 2 == 1:
            src = Image.fromarray(photos[(i // 2 + seed) % len(photos)])
            images.append(np.asarray(src.resize((width, height), Image.Resampling.LANCZOS)))
        else:
            images.append(photo_like(seed * 1000 + i, width, height))
    return images


def encoded(image: npt.NDArray[np.uint8], fmt: str, key: str) -> bytes:
    """Encode (JPEG q=90 or PNG level 6), cached under bench/out."""
    path = OUT / f"{key}.{fmt.lower()}"
    if path.exists():
        return path.read_bytes()
    buf = io.BytesIO()
    params = {"quality": 90} if fmt == "JPEG" else {"compress_level": 6}
    Image.fromarray(image).save(buf, fmt, **params)
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def baseline(data: bytes) -> str:
    """HMA's path: full Pillow decode + pdqhash.compute."""
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    bits, _ = pdqhash.compute(rgb)
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def fast_pdq_only(data: bytes) -> str:
    """The fast decode and hash, without the cryptographic digests."""
    _, s = decode_scaled(data)
    return fast_pdq_from_pixels(
        s.pixels, full_shape=s.full_shape, block=s.block, reversed_axes=s.reversed_axes
    )[0]


METHODS: dict[str, Callable[[bytes], object]] = {
    "baseline": baseline,
    "exact": lambda d: hash_bytes(d, mode="exact"),
    "fast": lambda d: hash_bytes(d, mode="fast"),
    "fast-pdq": fast_pdq_only,
}


def time_methods(files: list[bytes], rounds: int) -> dict[str, float]:
    """Median seconds per image for each method, methods interleaved per image."""
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for data in files:  # warm-up (lru caches, first-call costs)
        for fn in METHODS.values():
            fn(data)
    for _ in range(rounds):
        for data in files:
            for name, fn in METHODS.items():
                t0 = time.perf_counter()
                fn(data)
                times[name].append(time.perf_counter() - t0)
    return {m: statistics.median(v) for m, v in times.items()}


def distances(files: list[bytes], min_side: int | None = None) -> list[int]:
    """Hamming distance between exact and fast PDQ for each file (quality ignored).

    ``min_side`` overrides the fast path's DCT-scaling floor (default: the library's).
    """
    out = []
    for data in files:
        exact = hash_bytes(data, mode="exact", min_quality=0).pdq
        if min_side is None:
            fast = hash_bytes(data, mode="fast", min_quality=0).pdq
        else:
            _, s = decode_scaled(data, min_side=min_side)
            fast = fast_pdq_from_pixels(
                s.pixels, full_shape=s.full_shape, block=s.block, reversed_axes=s.reversed_axes
            )[0]
        assert exact is not None and fast is not None
        out.append(PDQSignal.distance(exact, fast))
    return out


def naive_distances(files: list[bytes]) -> list[int]:
    """Distance to exact of ``pdqhash.compute`` run directly on the same reduced image.

    The method measured in FINDINGS (4-16 bits of drift): what folding the reference
    filter's weights onto the reduced image avoids.
    """
    out = []
    for data in files:
        exact = hash_bytes(data, mode="exact", min_quality=0).pdq
        _, s = decode_scaled(data)
        pixels = np.ascontiguousarray(s.pixels)
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=2)
        bits, _ = pdqhash.compute(pixels)
        assert exact is not None
        out.append(PDQSignal.distance(exact, np.packbits(bits.astype(np.uint8)).tobytes().hex()))
    return out


def summary(values: list[int]) -> str:
    """min / median / p95 / max of a list of bit distances."""
    a = np.array(values)
    return (
        f"min {a.min()}  median {np.median(a):g}  p95 {np.percentile(a, 95):g}  "
        f"max {a.max()}  (n={a.size})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="images per size for timing")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds")
    parser.add_argument("--drift-images", type=int, default=30, help="images per size for drift")
    parser.add_argument("--quick", action="store_true", help="2 images, 2 rounds, 10 for drift")
    parser.add_argument("--drift-only", action="store_true", help="skip the timing tables")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds, args.drift_images = 2, 2, 10

    print(
        f"hashing benchmark: {args.images} images x {args.rounds} rounds per cell; "
        f"benign photos: {'yes' if benign_photos() else 'no (scikit-image not installed)'}"
    )
    header = (
        f"{'format':6} {'size':>10} | {'baseline':>9} {'exact':>9} {'fast':>9} {'fast-pdq':>9}"
        f" img/s | {'exact':>6} {'fast':>6} {'fast-pdq':>8} x baseline"
    )
    print(header)
    print("-" * len(header))
    for fmt in ("JPEG", "PNG") if not args.drift_only else ():
        for width, height in SIZES:
            images = corpus(width, height, args.images)
            files = [encoded(im, fmt, f"speed-{width}x{height}-{i}") for i, im in enumerate(images)]
            t = time_methods(files, args.rounds)
            ips = {m: 1.0 / s for m, s in t.items()}
            ratio = {m: t["baseline"] / s for m, s in t.items()}
            print(
                f"{fmt:6} {width:>5}x{height:<4} | {ips['baseline']:9.1f} {ips['exact']:9.1f} "
                f"{ips['fast']:9.1f} {ips['fast-pdq']:9.1f}       | {ratio['exact']:6.2f} "
                f"{ratio['fast']:6.2f} {ratio['fast-pdq']:8.2f}",
                flush=True,
            )
    print()
    print("fast vs exact PDQ distance (bits), half synthetic, half benign photos:")
    for fmt in ("JPEG", "PNG"):
        for width, height in SIZES:
            images = corpus(width, height, args.drift_images, seed=7)
            files = [encoded(im, fmt, f"drift-{width}x{height}-{i}") for i, im in enumerate(images)]
            print(f"  {fmt:4} {width:>5}x{height:<4} {summary(distances(files))}", flush=True)
            if fmt == "JPEG":
                print(f"  {'':15} naive: {summary(naive_distances(files))}", flush=True)
    print()
    print("the same, by DCT-scaling floor (shorter side kept >= floor; default 256):")
    for width, height in SIZES[1:]:
        images = corpus(width, height, args.drift_images, seed=7)
        files = [encoded(im, "JPEG", f"drift-{width}x{height}-{i}") for i, im in enumerate(images)]
        for floor in (64, 128, 256, 512):
            _, s = decode_scaled(files[0], min_side=floor)
            print(
                f"  {width:>5}x{height:<4} floor {floor:>3} (scale 1/{s.block}): "
                f"{summary(distances(files, floor))}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
