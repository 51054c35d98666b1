"""The generic ONNX plug-in, on tiny models built in the test (no downloaded weights)."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from classify_models import card_dict, redness_model, solid, two_input_model, write_card

from safestream.classify import load_classifier
from safestream.classify.conformance import check_classifier
from safestream.classify.errors import (
    MissingExtraError,
    ModelCardError,
    ModelError,
    ModelLoadError,
    ModelNotFoundError,
    ModelShapeError,
)
from safestream.classify.generic import ModelCard, OnnxClassifier
from safestream.classify.runtime import sha256_file
from safestream.errors import ConfigError, SafestreamError


def test_card_model_scores_and_categories(redness_card: Path) -> None:
    model = load_classifier(card=redness_card)
    assert model.name == "partner-redness"
    assert model.labels == ("other", "red")
    assert model.input_size == (32, 32)
    assert model.categories == {"minor_likely"}
    red = model.classify(solid((255, 0, 0)))
    blue = model.classify(solid((0, 0, 255)))
    grey = model.classify(solid((128, 128, 128)))
    assert red.label_scores["red"] > 0.99
    assert blue.label_scores["red"] < 0.01
    assert grey.label_scores["red"] == pytest.approx(0.5, abs=1e-4)
    assert red.category_scores["minor_likely"] == red.label_scores["red"]
    assert red.flagged == ("minor_likely",)
    assert blue.flagged == ()
    # Categories the card does not map are not assessed: None, never 0.
    for category in ("explicit_nudity", "suggestive", "csam", "drawn_explicit"):
        assert red.category_scores[category] is None
    assert red.to_dict()["scores"]["csam"] is None


def test_card_model_passes_conformance_kit(redness_card: Path) -> None:
    check_classifier(load_classifier(card=redness_card))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("resize", ["stretch", "letterbox", "crop"])
def test_layouts_and_resizing(tmp_path: Path, layout: str, resize: str) -> None:
    redness_model(tmp_path / "m.onnx", layout=layout, size=None)
    card = write_card(
        tmp_path, card_dict("m.onnx", layout=layout, resize=resize, input_size=[40, 24])
    )
    model = load_classifier(card=card)
    assert model.classify(solid((250, 0, 0), 300, 100)).label_scores["red"] > 0.99
    check_classifier(model)


def test_bgr_mean_std_and_logits(tmp_path: Path) -> None:
    redness_model(tmp_path / "m.onnx", softmax=False)
    # BGR swaps red and blue: a red frame now scores low.
    card = write_card(
        tmp_path, card_dict("m.onnx", channel_order="BGR", output="softmax"), "bgr.json"
    )
    assert load_classifier(card=card).classify(solid((255, 0, 0))).label_scores["red"] < 0.01
    # mean on red only shifts red: a grey frame minus 0.5 red leans blue.
    card = write_card(
        tmp_path, card_dict("m.onnx", mean=[0.5, 0, 0], output="softmax"), "mean.json"
    )
    grey = load_classifier(card=card).classify(solid((128, 128, 128)))
    assert grey.label_scores["red"] < 0.01
    # pixel_range 255: 10 * (255 - 0) saturates; sigmoid treats columns independently.
    card = write_card(
        tmp_path, card_dict("m.onnx", pixel_range=255.0, output="sigmoid"), "sig.json"
    )
    result = load_classifier(card=card).classify(solid((255, 0, 0)))
    assert result.label_scores["red"] > 0.999 and result.label_scores["other"] == 0.5


def test_toml_and_json_cards_agree(tmp_path: Path) -> None:
    redness_model(tmp_path / "redness.onnx")
    a = ModelCard.load(write_card(tmp_path, card_dict(), "c.toml"))
    b = ModelCard.load(write_card(tmp_path, card_dict(), "c.json"))
    assert a == b
    assert a.thresholds == {"minor_likely": 0.9}


def test_default_threshold_is_half(tmp_path: Path) -> None:
    redness_model(tmp_path / "redness.onnx")
    card = ModelCard.load(write_card(tmp_path, card_dict(thresholds=None)))
    assert card.thresholds == {"minor_likely": 0.5}


def test_sha256_pins_the_file(tmp_path: Path) -> None:
    path = redness_model(tmp_path / "redness.onnx")
    good = write_card(tmp_path, card_dict(sha256=sha256_file(path)), "good.json")
    assert load_classifier(card=good).name == "partner-redness"
    bad = write_card(tmp_path, card_dict(sha256="0" * 64), "bad.json")
    with pytest.raises(ModelLoadError, match="SHA-256"):
        load_classifier(card=bad)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"name": None}, "name: is required"),
        ({"model": None}, "model: is required"),
        ({"colour": "red"}, "unknown keys ['colour']"),
        ({"input_size": [32]}, "input_size: must be [width, height]"),
        ({"input_size": [0, 32]}, "input_size"),
        ({"input_size": [32, 99999]}, "input_size"),
        ({"layout": "CHW"}, "layout: must be 'NCHW' or 'NHWC'"),
        ({"resize": "squash"}, "resize: must be one of"),
        ({"channel_order": "GRB"}, "channel_order"),
        ({"pixel_range": 2.0}, "pixel_range"),
        ({"mean": [0, 0]}, "mean: must be a list of 3 numbers"),
        ({"std": [1, 0, 1]}, "std: must be positive"),
        ({"labels": []}, "labels: must be a non-empty list"),
        ({"labels": ["a", "a"]}, "duplicate"),
        ({"output": "logits"}, "output: must be one of"),
        ({"categories": {}}, "categories: must be a table"),
        ({"categories": {"blue": "csam"}}, "label 'blue' is not in labels"),
        ({"categories": {"red": "violence"}}, "unknown category 'violence'"),
        ({"thresholds": {"csam": 0.5}}, "not a category this card maps to"),
        ({"thresholds": {"minor_likely": 1.5}}, "must be a number in 0..1"),
        ({"thresholds": {"minor_likely": True}}, "must be a number in 0..1"),
        ({"sha256": "abc"}, "sha256: must be 64 hex"),
    ],
)
def test_card_errors_name_the_field(
    tmp_path: Path, overrides: dict[str, Any], fragment: str
) -> None:
    path = write_card(tmp_path, card_dict(**overrides))
    with pytest.raises(ModelCardError) as info:
        ModelCard.load(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_card_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match="does not exist"):
        ModelCard.load(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [unclosed\n")
    with pytest.raises(ModelCardError, match="not valid TOML"):
        ModelCard.load(broken)
    broken_json = tmp_path / "broken.json"
    broken_json.write_text("{")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        ModelCard.load(broken_json)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([1, 2]))
    with pytest.raises(ModelCardError, match="top level"):
        ModelCard.load(listed)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelCardError):
        ModelCard.load(binary)


def test_model_file_missing(tmp_path: Path) -> None:
    card = write_card(tmp_path, card_dict("absent.onnx"))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_classifier(card=card)


@pytest.mark.parametrize("content", [b"", b"this is not an onnx model", bytes(range(256)) * 40])
def test_model_file_corrupt(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "redness.onnx").write_bytes(content)
    with pytest.raises(ModelLoadError, match="corrupt or not an ONNX model"):
        load_classifier(card=write_card(tmp_path, card_dict()))


def test_model_file_truncated(tmp_path: Path) -> None:
    path = redness_model(tmp_path / "redness.onnx")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ModelLoadError):
        load_classifier(card=write_card(tmp_path, card_dict()))


def test_wrong_input_size(tmp_path: Path) -> None:
    redness_model(tmp_path / "redness.onnx", size=(64, 48))
    card = write_card(tmp_path, card_dict(input_size=[224, 224]))
    with pytest.raises(ModelShapeError, match="fix input_size or layout"):
        load_classifier(card=card)


def test_wrong_layout(tmp_path: Path) -> None:
    redness_model(tmp_path / "redness.onnx", layout="NHWC")
    with pytest.raises(ModelShapeError, match="check 'layout'"):
        load_classifier(card=write_card(tmp_path, card_dict(layout="NCHW")))


def test_wrong_label_count(tmp_path: Path) -> None:
    redness_model(tmp_path / "redness.onnx", n_labels=3)
    with pytest.raises(ModelShapeError, match="lists 2 labels"):
        load_classifier(card=write_card(tmp_path, card_dict()))


def test_wrong_channel_count(tmp_path: Path) -> None:
    redness_model(tmp_path / "redness.onnx", channels=1)
    with pytest.raises(ModelShapeError, match="1 channels"):
        load_classifier(card=write_card(tmp_path, card_dict()))


def test_not_an_image_model(tmp_path: Path) -> None:
    two_input_model(tmp_path / "redness.onnx")
    with pytest.raises(ModelShapeError, match="2 inputs"):
        load_classifier(card=write_card(tmp_path, card_dict()))


def test_unknown_output_name(tmp_path: Path) -> None:
    redness_model(tmp_path / "redness.onnx")
    with pytest.raises(ModelShapeError, match="no output 'probs'"):
        load_classifier(card=write_card(tmp_path, card_dict(output_name="probs")))


def test_missing_onnxruntime_names_the_extra(
    redness_card: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "onnxruntime":
            raise ImportError("no onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingExtraError, match=r"safestream\[classify\]"):
        OnnxClassifier.from_card(redness_card)


def test_name_and_card_together(redness_card: Path) -> None:
    with pytest.raises(ModelError, match="not both"):
        load_classifier("opennsfw", card=redness_card)


def test_every_model_error_is_a_safestream_error() -> None:
    for cls in (ModelCardError, ModelLoadError, ModelNotFoundError, ModelShapeError):
        assert issubclass(cls, SafestreamError)


def test_huge_frame_is_refused_not_allocated(redness_card: Path) -> None:
    model = load_classifier(card=redness_card)
    # A broadcast view: 100k x 100k "pixels" without the memory behind them.
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (100_000, 100_000, 3))
    from safestream.classify import ClassifierInputError

    with pytest.raises(ClassifierInputError, match="over the limit"):
        model.classify(huge)


def test_assess_merges_models(tmp_path: Path) -> None:
    from safestream.classify import assess

    redness_model(tmp_path / "redness.onnx")
    a = load_classifier(card=write_card(tmp_path, card_dict(), "a.json"))
    b = load_classifier(
        card=write_card(
            tmp_path,
            card_dict(
                name="b",
                categories={"red": "csam", "other": "suggestive"},
                thresholds={"csam": 0.9},
            ),
            "b.json",
        )
    )
    results, merged = assess([a, b], solid((255, 0, 0)))
    assert [r.model for r in results] == ["partner-redness", "b"]
    assert merged["minor_likely"] == merged["csam"] == results[0].label_scores["red"]
    assert merged["suggestive"] is not None and merged["suggestive"] < 0.01
    assert merged["explicit_nudity"] is None


def test_stretch_size_follows_the_cards_resize(tmp_path: Path) -> None:
    """A card that stretches declares its input size as the stretch (video frames are
    then scaled straight to it); letterbox and crop keep the aspect and declare none.
    Several classifiers share a stretch size only when all stretch to the same one."""
    from safestream.classify import shared_stretch_size

    redness_model(tmp_path / "redness.onnx")
    stretch = OnnxClassifier.from_card(write_card(tmp_path, card_dict(), "s.json"))
    wide = OnnxClassifier.from_card(write_card(tmp_path, card_dict(name="wide"), "w.json"))
    wide.stretch_size = (48, 32)  # another model that stretches to another size
    boxed = OnnxClassifier.from_card(
        write_card(tmp_path, card_dict(resize="letterbox", name="boxed"), "b.json")
    )
    cropped = OnnxClassifier.from_card(
        write_card(tmp_path, card_dict(resize="crop", name="cropped"), "c.json")
    )
    assert stretch.stretch_size == (32, 32)
    assert boxed.stretch_size is None and cropped.stretch_size is None
    assert shared_stretch_size([stretch]) == (32, 32)
    assert shared_stretch_size([stretch, stretch]) == (32, 32)
    assert shared_stretch_size([stretch, wide]) is None
    assert shared_stretch_size([stretch, boxed]) is None
    assert shared_stretch_size([]) is None
    # A frame at the stretch size scores as the same frame at another size stretched.
    big = np.zeros((64, 64, 3), np.uint8)
    big[..., 0] = 200
    assert stretch.classify(big[:32, :32]).label_scores == pytest.approx(
        stretch.classify(big).label_scores
    )
