"""How evidence images are shown by default: greyscale and blurred (reviewer wellness)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from safestream.classify.obscure import blur
from safestream.errors import ImageError


def obscured_png(content: bytes) -> bytes:
    """A greyscale, heavily blurred PNG of an image (irreversible; see classify.obscure)."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            grey = img.convert("L").convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(
            "this evidence is not an image that can be shown blurred; "
            "ask for original=true (audited) to download it"
        ) from exc
    out = blur(np.asarray(grey, dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(out, "RGB").convert("L").save(buf, "PNG")
    return buf.getvalue()
