"""Classifier scores in /v1/check, score rules in the policy, /v1/obscure.

The partner model here is a tiny ONNX "redness" model built in the test (its
"red" label is mapped to a category only to exercise the wiring); the bundled
default model runs on benign synthetic images only.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api_support import auth
from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.engine.policy import Policy
from safestream.errors import ConfigError
from safestream.store.db import Store
from safestream.store.service import KeyRepository

sys.path.insert(0, str(Path(__file__).parents[1] / "classify"))
from classify_models import card_dict, redness_model, write_card


def png(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def card(tmp_path: Path) -> Path:
    redness_model(tmp_path / "redness.onnx")
    return write_card(tmp_path, card_dict(), "card.toml")


@pytest.fixture
def classified(store: Store, card: Path) -> Iterator[tuple[TestClient, str]]:
    policy = Policy.from_dict(
        {
            "rule": [
                {
                    "name": "red",
                    "min_scores": {"minor_likely": 0.9},
                    "verdict": "review",
                    "actions": ["enqueue_review"],
                }
            ]
        }
    )
    settings = ServiceSettings(classifiers=(f"card:{card}", "opennsfw"))
    app = create_app(store, settings=settings, policy=policy)
    key, _ = KeyRepository(store).create("integrator")
    with TestClient(app) as client:
        yield client, key


def test_scores_reach_policy_response_and_record(classified: tuple[TestClient, str]) -> None:
    client, key = classified
    red = client.post("/v1/check", files={"file": ("r.png", png((250, 10, 10)))}, headers=auth(key))
    assert red.status_code == 200, red.text
    body = red.json()
    assert body["scores"]["minor_likely"] > 0.9
    assert isinstance(body["scores"]["explicit_nudity"], float)  # assessed by opennsfw
    assert body["scores"]["csam"] is None  # no loaded model assesses it
    assert body["verdict"] == "review" and body["actions"] == ["enqueue_review"]
    assert [c["model"] for c in body["classifications"]] == ["partner-redness", "opennsfw"]
    record = client.get(f"/v1/checks/{body['content_id']}", headers=auth(key)).json()
    assert record["scores"]["minor_likely"] == body["scores"]["minor_likely"]
    blue = client.post(
        "/v1/check", files={"file": ("b.png", png((10, 10, 250)))}, headers=auth(key)
    )
    assert blue.json()["verdict"] == "allow"
    assert blue.json()["scores"]["minor_likely"] < 0.1


def test_obscure_returns_irreversible_png(classified: tuple[TestClient, str]) -> None:
    client, key = classified
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(buf, "PNG")
    r = client.post(
        "/v1/obscure",
        files={"file": ("n.png", buf.getvalue())},
        data={"method": "pixelate", "whole": "true"},
        headers=auth(key),
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    original = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    assert out.shape == original.shape
    assert np.abs(out.astype(int) - original.astype(int)).mean() > 30
    bad = client.post("/v1/obscure", files={"file": ("x.png", b"not an image")}, headers=auth(key))
    assert bad.status_code == 422
    wrong = client.post(
        "/v1/obscure",
        files={"file": ("n.png", buf.getvalue())},
        data={"method": "smudge"},
        headers=auth(key),
    )
    assert wrong.status_code == 422


def test_bad_classifier_configuration_stops_start_up(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        create_app(store, settings=ServiceSettings(classifiers=("no-such-model",)))
    with pytest.raises(ConfigError):
        create_app(store, settings=ServiceSettings(classifiers=(f"card:{tmp_path / 'nope.toml'}",)))


def test_default_policy_obscures_and_reviews_flagged_images(store: Store, tmp_path: Path) -> None:
    redness_model(tmp_path / "redness.onnx")
    card = write_card(
        tmp_path,
        card_dict(categories={"red": "explicit_nudity"}, thresholds={"explicit_nudity": 0.9}),
        "card.toml",
    )
    app = create_app(store, settings=ServiceSettings(classifiers=(f"card:{card}",)))
    key, _ = KeyRepository(store).create("integrator")
    with TestClient(app) as client:
        r = client.post(
            "/v1/check", files={"file": ("r.png", png((250, 10, 10)))}, headers=auth(key)
        )
        body = r.json()
        assert body["verdict"] == "review"
        assert body["actions"] == ["obscure", "enqueue_review"]
        assert body["action_results"][0]["detail"] == {"render": "POST /v1/obscure"}
        assert body["scores"]["minor_likely"] is None
