"""``safestream classify``: JSON lines, exit status, obscured copies, model cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from classify_models import card_dict, installed, redness_model, solid, write_card
from click.testing import CliRunner
from PIL import Image

from safestream.classify.base import CATEGORIES
from safestream.cli_classify import COMMANDS, classify_cmd
from safestream.signals.synthetic import photo_like


def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(classify_cmd, list(args))
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.stderr


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, pixels in {
        "red": solid((255, 0, 0), 120, 80),
        "blue": solid((0, 0, 255), 120, 80),
        "photo": photo_like(1, 320, 240),
    }.items():
        path = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(path)
        paths[name] = path
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    paths["broken"] = tmp_path / "broken.jpg"
    return paths


@pytest.fixture
def card(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    redness_model(folder / "redness.onnx")
    return write_card(folder, card_dict(), "card.toml")


def test_registered_commands() -> None:
    assert [c.name for c in COMMANDS] == ["classify"]


def test_nothing_flagged_exits_0(card: Path, images: dict[str, Path]) -> None:
    code, lines, _ = run("--model-card", str(card), str(images["blue"]))
    assert code == 0
    (line,) = lines
    assert line["file"] == str(images["blue"])
    scores = line["scores"]
    assert isinstance(scores, dict) and list(scores) == list(CATEGORIES)
    assert scores["minor_likely"] is not None and scores["minor_likely"] < 0.01
    assert scores["explicit_nudity"] is None  # not assessed by this model
    assert line["flagged"] == []


def test_flagged_exits_1_and_obscures(card: Path, images: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "obscured"
    code, lines, _ = run(
        "--model-card", str(card), "--obscure", str(out), "--method", "black",
        "--warning", "Hidden", str(images["red"]), str(images["blue"]),
    )  # fmt: skip
    assert code == 1
    red, blue = lines
    assert red["flagged"] == ["minor_likely"]
    written = Path(str(red["obscured"]))
    assert written.parent == out and written.exists()
    pixels = np.asarray(Image.open(written))
    assert pixels.shape == (80, 120, 3)
    assert not (pixels == (255, 0, 0)).all(axis=2).any()  # no red pixel left
    assert "obscured" not in blue


def test_errors_win_and_the_scan_goes_on(card: Path, images: dict[str, Path]) -> None:
    code, lines, _ = run(
        "--model-card", str(card), str(images["broken"]), str(images["red"]),
        str(images["red"].parent / "absent.png"),
    )  # fmt: skip
    assert code == 2
    broken, red, absent = lines
    assert broken["kind"] == "corrupt_image" and "error" in broken
    assert red["flagged"] == ["minor_likely"]
    assert absent["kind"] == "io"


def test_obscure_all_and_same_stems(card: Path, images: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "all"
    code, lines, _ = run(
        "--model-card", str(card), "--obscure", str(out), "--obscure-all",
        str(images["blue"]), str(images["blue"]),
    )  # fmt: skip
    assert code == 0
    assert lines[0]["obscured"] != lines[1]["obscured"]
    assert len(list(out.iterdir())) == 2


def test_bad_model_card_exits_2(tmp_path: Path, images: dict[str, Path]) -> None:
    bad = write_card(tmp_path, card_dict(layout="CHW"), "bad.json")
    code, lines, err = run("--model-card", str(bad), str(images["red"]))
    assert code == 2 and lines == []
    assert "layout" in err
    code, _, err = run("--model", "nope", str(images["red"]))
    assert code == 2 and "no bundled model named 'nope'" in err
    code, _, err = run()
    assert code == 2 and "at least one image" in err


def test_list_models() -> None:
    result = CliRunner().invoke(classify_cmd, ["--list-models"])
    assert result.exit_code == 0
    status = json.loads(result.stdout)
    assert status["opennsfw"]["default"] is True
    assert "AGPL" in status["nudenet"]["licence"]


@pytest.mark.skipif(not installed("opennsfw"), reason="needs the 'classify' extra")
def test_default_model_and_pixel_limit(images: dict[str, Path]) -> None:
    code, lines, _ = run(str(images["photo"]))
    assert code == 0
    assert lines[0]["models"][0]["model"] == "opennsfw"
    code, lines, _ = run("--max-pixels", "100", str(images["photo"]))
    assert code == 2 and lines[0]["kind"] == "decompression_bomb"


@pytest.mark.skipif(not installed("nudenet"), reason="needs the 'classify-nudenet' extra")
def test_two_models_merge(card: Path, images: dict[str, Path]) -> None:
    code, lines, _ = run("--model", "nudenet", "--model-card", str(card), str(images["photo"]))
    assert code == 0
    line = lines[0]
    assert [m["model"] for m in line["models"]] == ["nudenet", "partner-redness"]
    scores = line["scores"]
    assert isinstance(scores, dict)
    assert scores["explicit_nudity"] is not None and scores["minor_likely"] is not None
    assert scores["csam"] is None
