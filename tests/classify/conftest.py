"""Fixtures for the classifier tests: tiny models built here, benign images only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from classify_models import card_dict, redness_model, write_card


@pytest.fixture
def redness_card(tmp_path: Path) -> Path:
    """A TOML model card for the redness model, in its own folder."""
    redness_model(tmp_path / "redness.onnx")
    return write_card(tmp_path, card_dict(), "card.toml")


@pytest.fixture(scope="session")
def benign_photos() -> dict[str, npt.NDArray[np.uint8]]:
    """scikit-image's benign sample photos (RGB and grey), by name."""
    data = pytest.importorskip("skimage.data")
    from safestream.classify.calibration import skimage_images

    # The 200 LFW face crops are in the slow full-set test only.
    return {k: v for k, v in skimage_images(data) if not k.startswith("lfw_subset")}
