"""Helpers for the signals tests' synthetic media (a unique module name, not conftest)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image


def encode(image: Image.Image | npt.NDArray[np.uint8], fmt: str, **params: Any) -> bytes:
    """Encode a Pillow image or an RGB array to bytes in ``fmt``."""
    im = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()
