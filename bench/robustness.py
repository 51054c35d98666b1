"""Robustness benchmark (perception-style): recall of transformed copies at PDQ <= 31.

A bank holds the ``exact``-mode PDQ of each original (as a hotline computes it with
HMA's path).  Each original is transformed (resize, JPEG quality, crops, pad, rotate,
flip, watermark, blur, gamma), saved as JPEG, and hashed with ``exact`` and with
``fast``; recall is the share of transformed copies whose hash is within 31 bits of
their original's.  For rotate and flip, recall is also given with dihedral matching
(any of the query's 8 dihedral hashes within 31 bits).  The false-match rate is the
share of (copy, unrelated original) pairs within 31 bits.

Originals: scikit-image's bundled benign photos (if installed; benchmark only) and
synthetic photo-like images, all distinct, ``--size`` pixels (default 1600x1200, so
the fast path decodes JPEGs at 1/4 scale).

Run: ``.venv/bin/python bench/robustness.py`` (``--images 20`` for a short run).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from hashing import benign_photos
from safestream.signals.hashing import hash_bytes
from safestream.signals.pdq import DEFAULT_PDQ_THRESHOLD, PDQSignal
from safestream.signals.synthetic import photo_like

Array = npt.NDArray[np.uint8]
THRESHOLD = DEFAULT_PDQ_THRESHOLD


def jpeg(image: Array, quality: int = 90) -> bytes:
    """Encode an RGB array as JPEG."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _resize(a: Array, scale: float) -> Array:
    h, w = a.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(a).resize(size, Image.Resampling.LANCZOS))


def _crop(a: Array, fraction: float) -> Array:
    """Keep the centre, removing ``fraction`` of each dimension (half on each side)."""
    h, w = a.shape[:2]
    dy, dx = round(h * fraction / 2), round(w * fraction / 2)
    return np.ascontiguousarray(a[dy : h - dy, dx : w - dx])


def _pad(a: Array, fraction: float) -> Array:
    h, w = a.shape[:2]
    dy, dx = round(h * fraction), round(w * fraction)
    return np.pad(a, ((dy, dy), (dx, dx), (0, 0)), constant_values=0)


def _watermark(a: Array) -> Array:
    im = Image.fromarray(a).convert("RGBA")
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    h = im.size[1]
    font = ImageFont.load_default(size=max(10, h // 12))
    draw.text(
        (im.size[0] // 20, h - h // 6), "SAMPLE (c) 2026", font=font, fill=(255, 255, 255, 160)
    )
    draw.rectangle(
        (im.size[0] - h // 5, h // 20, im.size[0] - h // 20, h // 5), fill=(255, 255, 255, 110)
    )
    return np.asarray(Image.alpha_composite(im, layer).convert("RGB"))


def _blur(a: Array) -> Array:
    radius = max(1.0, min(a.shape[:2]) / 400)
    return np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(radius)))


def _gamma(a: Array, gamma: float) -> Array:
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** gamma), 0, 255).astype(np.uint8)
    return lut[a]


#: name -> (transform, JPEG quality of the saved copy, whether dihedral matching applies)
TRANSFORMS: dict[str, tuple[Callable[[Array], Array], int, bool]] = {
    "re-encode q90": (lambda a: a, 90, False),
    "resize 50%": (lambda a: _resize(a, 0.5), 90, False),
    "resize 25%": (lambda a: _resize(a, 0.25), 90, False),
    "jpeg q30": (lambda a: a, 30, False),
    "crop 5%": (lambda a: _crop(a, 0.05), 90, False),
    "crop 10%": (lambda a: _crop(a, 0.10), 90, False),
    "pad 5% black": (lambda a: _pad(a, 0.05), 90, False),
    "rotate 90": (lambda a: np.ascontiguousarray(np.rot90(a)), 90, True),
    "flip left-right": (lambda a: np.ascontiguousarray(a[:, ::-1]), 90, True),
    "watermark": (_watermark, 90, False),
    "blur": (_blur, 90, False),
    "gamma 0.7": (lambda a: _gamma(a, 0.7), 90, False),
}


@dataclass
class Tally:
    """Counts for one transform and one mode."""

    hits: int = 0
    dihedral_hits: int = 0
    total: int = 0
    no_hash: int = 0
    distances: list[int] = field(default_factory=list)


def originals(n: int, width: int, height: int) -> list[Array]:
    """``n`` distinct originals: every benign photo once, then synthetic images."""
    out = []
    for photo in benign_photos()[:n]:
        im = Image.fromarray(photo).resize((width, height), Image.Resampling.LANCZOS)
        out.append(np.asarray(im))
    seed = 5000
    while len(out) < n:
        out.append(photo_like(seed, width, height))
        seed += 1
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print recall and false-match tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--size", default="1600x1200")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    images = originals(args.images, width, height)
    n_photos = min(len(benign_photos()), args.images)
    print(
        f"robustness: {len(images)} originals {width}x{height} ({n_photos} benign photos, "
        f"{len(images) - n_photos} synthetic); bank = exact PDQ of JPEG q95 originals; "
        f"match = distance <= {THRESHOLD}"
    )
    bank = []
    for im in images:
        h = hash_bytes(jpeg(im, 95), mode="exact", min_quality=0)
        assert h.pdq is not None
        bank.append(h.pdq)

    modes = ("exact", "fast")
    tallies = {(t, m): Tally() for t in TRANSFORMS for m in modes}
    false_pairs = {m: 0 for m in modes}
    false_pairs_dihedral = {m: 0 for m in modes}
    pairs = {m: 0 for m in modes}
    pairs_dihedral = {m: 0 for m in modes}
    for index, im in enumerate(images):
        for name, (transform, quality, dihedral) in TRANSFORMS.items():
            data = jpeg(transform(im), quality)
            for mode in modes:
                h = hash_bytes(data, mode=mode, dihedral=dihedral)
                tally = tallies[(name, mode)]
                tally.total += 1
                if h.pdq is None:
                    tally.no_hash += 1
                    continue
                d = PDQSignal.distance(h.pdq, bank[index])
                tally.distances.append(d)
                tally.hits += d <= THRESHOLD
                others = [b for j, b in enumerate(bank) if j != index]
                pairs[mode] += len(others)
                false_pairs[mode] += sum(PDQSignal.distance(h.pdq, b) <= THRESHOLD for b in others)
                if dihedral:
                    tally.dihedral_hits += any(
                        PDQSignal.distance(q, bank[index]) <= THRESHOLD for q in h.pdq_dihedral
                    )
                    pairs_dihedral[mode] += len(others)
                    false_pairs_dihedral[mode] += sum(
                        any(PDQSignal.distance(q, b) <= THRESHOLD for q in h.pdq_dihedral)
                        for b in others
                    )
        print(f"  {index + 1}/{len(images)}", end="\r", file=sys.stderr, flush=True)

    print(
        f"{'transform':18} | {'exact recall':>12} {'fast recall':>11} {'diff':>6} | "
        f"{'exact dihedral':>14} {'fast dihedral':>13} | {'median d exact/fast':>19} | no hash"
    )
    worst = 0.0
    for name, (_, _, dihedral) in TRANSFORMS.items():
        e, f = tallies[(name, "exact")], tallies[(name, "fast")]
        re, rf = 100.0 * e.hits / e.total, 100.0 * f.hits / f.total
        worst = max(worst, re - rf)
        dih = ""
        if dihedral:
            de, df = 100.0 * e.dihedral_hits / e.total, 100.0 * f.dihedral_hits / f.total
            worst = max(worst, de - df)
            dih = f"{de:13.1f}% {df:12.1f}%"
        else:
            dih = f"{'':14} {'':13}"
        med_e = np.median(e.distances) if e.distances else float("nan")
        med_f = np.median(f.distances) if f.distances else float("nan")
        print(
            f"{name:18} | {re:11.1f}% {rf:10.1f}% {rf - re:+6.1f} | {dih} | "
            f"{med_e:9.1f} / {med_f:<7.1f} | {e.no_hash}/{f.no_hash}"
        )
    for mode in modes:
        rate = false_pairs[mode] / max(1, pairs[mode])
        rate_d = false_pairs_dihedral[mode] / max(1, pairs_dihedral[mode])
        print(
            f"false matches ({mode}): {false_pairs[mode]} of {pairs[mode]} pairs ({rate:.2e}); "
            f"with dihedral: {false_pairs_dihedral[mode]} of {pairs_dihedral[mode]} ({rate_d:.2e})"
        )
    print(f"largest recall loss of fast vs exact: {worst:.1f} points (target: <= 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
