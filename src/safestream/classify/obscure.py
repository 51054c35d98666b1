"""Interventions on frames: pixelate, blur, black out, overlay a warning.

Pure functions: an (H, W, 3) uint8 RGB frame in, a new obscured frame out (the input
is never changed). Used by the CLI, the API (an obscured copy), the live monitor and
the on-device SDK.

Every method is **irreversible** in the returned pixels. A faint Gaussian blur can be
largely undone by deconvolution, and a fine mosaic can be read by eye or by
super-resolution, so:

* ``pixelate`` keeps at most ``cells`` blocks along the region's shorter side (8 by
  default: one block mean per 1/8 of the region), adds random noise to every block
  and quantises the colours to steps of 16: only a few dozen coarse, noisy values
  survive of the region, whatever its size;
* ``blur`` reduces the region to ``cells`` pixels along its shorter side (6 by
  default), adds noise, and scales it back up smoothly: a soft colour wash with no
  detail left to sharpen;
* ``black`` replaces the region by a flat colour.

Regions are grown by ``margin`` (10 % of the box on each side) so that a detector's
tight box does not leave the edges of what it found. The noise comes from the
operating system's entropy unless a ``rng`` is passed (tests), so it cannot be
replayed and subtracted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from safestream.classify.base import RGBImage, as_rgb
from safestream.classify.errors import ClassifierInputError

Method = Literal["pixelate", "blur", "black"]
METHODS: tuple[str, ...] = ("pixelate", "blur", "black")
#: (left, top, width, height) in pixels.
Box = tuple[int, int, int, int]
DEFAULT_WARNING = "Content hidden by safety filter"


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


def regions(
    shape: tuple[int, ...], boxes: Sequence[Box] | None, margin: float = 0.1
) -> list[tuple[int, int, int, int]]:
    """Boxes grown by ``margin`` and clipped, as (top, bottom, left, right) slices.

    ``None`` means the whole frame; an empty list means nothing to obscure.
    """
    height, width = shape[:2]
    if boxes is None:
        return [(0, height, 0, width)]
    if not 0 <= margin <= 1:
        raise ClassifierInputError(f"margin must be in 0..1, got {margin}")
    out = []
    for box in boxes:
        if len(box) != 4:
            raise ClassifierInputError(f"a box is (left, top, width, height), got {box!r}")
        x, y, w, h = (int(v) for v in box)
        if w < 0 or h < 0:
            raise ClassifierInputError(f"a box has a negative size: {box!r}")
        grow_x, grow_y = int(np.ceil(w * margin)), int(np.ceil(h * margin))
        left, right = max(0, x - grow_x), min(width, x + w + grow_x)
        top, bottom = max(0, y - grow_y), min(height, y + h + grow_y)
        if right > left and bottom > top:
            out.append((top, bottom, left, right))
    return out


def _block_means(region: npt.NDArray[np.uint8], cell: int) -> npt.NDArray[np.float32]:
    """Mean colour of each ``cell`` x ``cell`` block (edge blocks may be smaller)."""
    h, w = region.shape[:2]
    rows, cols = -(-h // cell), -(-w // cell)
    padded = np.empty((rows * cell, cols * cell, 3), dtype=np.float32)
    padded[:h, :w] = region
    # Edge padding by replication keeps edge-block means equal to their visible part's.
    padded[h:, :w] = padded[h - 1 : h, :w]
    padded[:, w:] = padded[:, w - 1 : w]
    means: npt.NDArray[np.float32] = padded.reshape(rows, cell, cols, cell, 3).mean(axis=(1, 3))
    return means


def _check_strength(cells: int, noise: float) -> None:
    if isinstance(cells, bool) or not isinstance(cells, int) or not 1 <= cells <= 64:
        raise ClassifierInputError(f"cells must be an integer 1..64, got {cells!r}")
    if not 0 <= noise <= 128:
        raise ClassifierInputError(f"noise must be in 0..128, got {noise!r}")


def _noisy_cells(
    region: npt.NDArray[np.uint8], cells: int, noise: float, gen: np.random.Generator
) -> tuple[npt.NDArray[np.float32], int]:
    """Block means of ``region`` (``cells`` blocks across its shorter side) plus noise."""
    h, w = region.shape[:2]
    cell = max(1, -(-min(h, w) // cells))
    means = _block_means(region, cell)
    means += gen.uniform(-noise, noise, size=means.shape).astype(np.float32)
    return means, cell


def pixelate(
    image: RGBImage,
    boxes: Sequence[Box] | None = None,
    *,
    cells: int = 8,
    noise: float = 24.0,
    margin: float = 0.1,
    rng: np.random.Generator | None = None,
) -> RGBImage:
    """Coarse noisy mosaic over the boxes (or the whole frame when ``boxes`` is None)."""
    _check_strength(cells, noise)
    out = as_rgb(image).copy()
    gen = _rng(rng)
    for top, bottom, left, right in regions(out.shape, boxes, margin):
        region = out[top:bottom, left:right]
        h, w = region.shape[:2]
        means, cell = _noisy_cells(region, cells, noise, gen)
        # Quantising to steps of 16 leaves 16 levels per channel per block.
        levels = np.clip(np.round(means / 16.0) * 16.0 + 8.0, 0, 255).astype(np.uint8)
        blocks = np.repeat(np.repeat(levels, cell, axis=0), cell, axis=1)
        out[top:bottom, left:right] = blocks[:h, :w]
    return out


def blur(
    image: RGBImage,
    boxes: Sequence[Box] | None = None,
    *,
    cells: int = 6,
    noise: float = 16.0,
    margin: float = 0.1,
    rng: np.random.Generator | None = None,
) -> RGBImage:
    """A smooth wash: the region shrunk to ``cells`` pixels across, noised, scaled back."""
    _check_strength(cells, noise)
    out = as_rgb(image).copy()
    gen = _rng(rng)
    for top, bottom, left, right in regions(out.shape, boxes, margin):
        region = out[top:bottom, left:right]
        h, w = region.shape[:2]
        tiny, cell = _noisy_cells(region, cells, noise, gen)
        tiny_img = Image.fromarray(np.clip(np.round(tiny), 0, 255).astype(np.uint8))
        rows, cols = tiny.shape[:2]
        smooth = tiny_img.resize((cols * cell, rows * cell), Image.Resampling.BICUBIC)
        out[top:bottom, left:right] = np.asarray(smooth, dtype=np.uint8)[:h, :w]
    return out


def black_out(
    image: RGBImage,
    boxes: Sequence[Box] | None = None,
    *,
    colour: tuple[int, int, int] = (0, 0, 0),
    margin: float = 0.1,
) -> RGBImage:
    """Flat ``colour`` over the boxes (or the whole frame)."""
    if len(colour) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in colour):
        raise ClassifierInputError(f"colour must be 3 integers 0..255, got {colour!r}")
    out = as_rgb(image).copy()
    for top, bottom, left, right in regions(out.shape, boxes, margin):
        out[top:bottom, left:right] = colour
    return out


def overlay_warning(image: RGBImage, text: str = DEFAULT_WARNING) -> RGBImage:
    """A dark band across the middle of the frame with ``text`` in white."""
    out = as_rgb(image)
    pil = Image.fromarray(out.copy())
    width, height = pil.size
    size = max(8, min(height // 12, width // max(8, len(text) // 2 + 2)))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(pil)
    band = max(1, min(height, size * 2))
    top = (height - band) // 2
    draw.rectangle((0, top, width, top + band), fill=(20, 20, 20))
    left, upper, right, lower = draw.textbbox((0, 0), text, font=font)
    x = max(0, (width - (right - left)) // 2 - left)
    y = top + max(0, (band - (lower - upper)) // 2) - upper
    draw.text((x, y), text, fill=(255, 255, 255), font=font)
    return np.asarray(pil, dtype=np.uint8)


def obscure(
    image: RGBImage,
    method: str = "pixelate",
    boxes: Sequence[Box] | None = None,
    *,
    warning: str | None = None,
    rng: np.random.Generator | None = None,
) -> RGBImage:
    """Obscure by ``method`` (pixelate, blur, black), then overlay ``warning`` if given."""
    if method == "pixelate":
        out = pixelate(image, boxes, rng=rng)
    elif method == "blur":
        out = blur(image, boxes, rng=rng)
    elif method == "black":
        out = black_out(image, boxes)
    else:
        raise ClassifierInputError(f"method must be one of {list(METHODS)}, got {method!r}")
    return overlay_warning(out, warning) if warning else out


__all__ = [
    "DEFAULT_WARNING",
    "METHODS",
    "Box",
    "Method",
    "black_out",
    "blur",
    "obscure",
    "overlay_warning",
    "pixelate",
    "regions",
]
