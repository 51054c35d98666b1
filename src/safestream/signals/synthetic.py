"""Synthetic, photo-like test images: smooth colour fields, shapes and sensor noise.

For tests, benchmarks and demos.  Drawn from a seeded random generator, so every run
makes the same pixels; they depict nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw


def _field(rng: np.random.Generator, height: int, width: int, cell: int) -> npt.NDArray[np.float32]:
    small = rng.normal(size=(max(2, height // cell), max(2, width // cell), 3))
    lo, hi = float(small.min()), float(small.max())
    img = Image.fromarray(((small - lo) / (hi - lo) * 255).astype(np.uint8))
    return np.asarray(img.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def photo_like(seed: int, width: int, height: int, *, noise: float = 4.0) -> npt.NDArray[np.uint8]:
    """An (height, width, 3) uint8 image with photo-like statistics, from ``seed``.

    Two octaves of smooth colour field, a dozen flat ellipses and rectangles (edges),
    and Gaussian noise of ``noise`` grey levels (texture PDQ's blur mostly removes).
    """
    rng = np.random.default_rng(seed)
    short = max(1, min(height, width))
    base = _field(rng, height, width, max(8, short // 6)) * 0.6
    base += _field(rng, height, width, max(4, short // 40)) * 0.3
    img = Image.fromarray(np.clip(base + 20, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = x0 + int(rng.integers(max(1, width // 20), max(2, width // 3)))
        y1 = y0 + int(rng.integers(max(1, height // 20), max(2, height // 3)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    arr = np.asarray(img, dtype=np.float32)
    if noise > 0:
        arr = arr + rng.normal(0.0, noise, size=arr.shape).astype(np.float32)
    out: npt.NDArray[np.uint8] = np.clip(arr, 0, 255).astype(np.uint8)
    return out


def write_synthetic_video(
    path: Path, seconds: int, gop_s: float, *, fps: int = 30, width: int = 1280, height: int = 720
) -> None:
    """Encode a synthetic H.264 MPEG-TS clip for benchmarks (needs ``safestream[video]``).

    A new photo-like background every 3 s with a square moving across it; libx264
    ``veryfast`` (B-frames on), a keyframe every ``gop_s`` seconds and no scene-cut
    keyframes, so the GOP is exactly what was asked.
    """
    from safestream.signals.video import require_av

    av = require_av()
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "g": str(int(gop_s * fps)), "sc_threshold": "0"}
        background = photo_like(0, width, height)
        for i in range(seconds * fps):
            if i % (3 * fps) == 0:
                background = photo_like(i, width, height)
            frame = background.copy()
            x = (i * 7) % (width - 120)
            frame[height * 5 // 12 : height * 7 // 12, x : x + 120] = (230, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
