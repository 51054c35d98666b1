"""Image fixtures for the signals tests: all synthetic (drawn, seeded), never real."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from signals_media import encode

from safestream.signals.synthetic import photo_like


@pytest.fixture(scope="session")
def photo() -> npt.NDArray[np.uint8]:
    """A 320x240 photo-like RGB array."""
    return photo_like(7, 320, 240)


@pytest.fixture(scope="session")
def photo_png(photo: npt.NDArray[np.uint8]) -> bytes:
    """``photo`` as PNG bytes."""
    return encode(photo, "PNG")


@pytest.fixture(scope="session")
def photo_jpeg() -> bytes:
    """A 1280x960 photo-like JPEG (large enough for DCT-scaled decoding)."""
    return encode(photo_like(11, 1280, 960), "JPEG", quality=90)
