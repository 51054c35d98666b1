"""End to end: a check of banked content opens a review item and queues a webhook
that `safestream worker --once` delivers, signed, to a real receiver."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api_support import auth
from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.auth import Role
from safestream.cli import cli
from safestream.demo import synthetic_image
from safestream.engine.policy import Policy
from safestream.errors import ConfigError
from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from safestream.store.reviews import ReviewRepository
from webhook_support import SECRET, Receiver, running_receiver, store_url

POLICY = Policy.from_dict(
    {
        "flood_window_s": 3600,
        "rule": [
            {
                "name": "known material",
                "outcome": ["match"],
                "verdict": "block",
                "actions": ["block", "enqueue_review", "webhook"],
            }
        ],
    }
)


def png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    synthetic_image(seed, (320, 240)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with running_receiver() as rec:
        monkeypatch.setenv("SAFESTREAM_WEBHOOK_URL", rec.url)
        monkeypatch.setenv("SAFESTREAM_WEBHOOK_SECRET", SECRET)
        yield rec


@pytest.fixture
def hook_client(
    store: Store, settings: ServiceSettings, receiver: Receiver, role_keys: dict[Role, str]
) -> Iterator[TestClient]:
    app = create_app(store, settings=settings, policy=POLICY)
    with TestClient(app) as c:
        curator = auth(role_keys[Role.CURATOR])
        h = c.post("/v1/hash", files={"file": ("a.png", png_bytes(1))}, headers=curator).json()
        assert c.post("/v1/banks", json={"name": "known"}, headers=curator).status_code == 201
        added = c.post(
            "/v1/banks/known/entries",
            json={"entries": [{"signal_type": "pdq", "value": h["pdq"], "external_id": "E1"}]},
            headers=curator,
        )
        assert added.status_code == 201
        app.state.safestream.engine.refresh()
        yield c


def test_check_opens_review_queues_webhook_and_worker_delivers_it(
    hook_client: TestClient, store: Store, receiver: Receiver, role_keys: dict[Role, str]
) -> None:
    key = auth(role_keys[Role.INTEGRATOR])
    form = {
        "account_id": "acct-9",
        "username": "someone",
        "profile_url": "https://example.com/u/someone",
        "ip_address": "203.0.113.7",
        "source_port": "51234",
        "client_timestamp": "2026-11-29T10:00:00+01:00",
        "surface": "upload",
    }
    bodies = []
    for _ in range(2):
        r = hook_client.post(
            "/v1/check", files={"file": ("x.png", png_bytes(1))}, data=form, headers=key
        )
        assert r.status_code == 200, r.text
        bodies.append(r.json())
    first, second = bodies
    assert first["verdict"] == "block"
    assert first["actions"] == ["block", "enqueue_review", "webhook"]
    results = {a["action"]: a for a in second["action_results"]}
    assert results["enqueue_review"]["detail"]["match_count"] == 2  # one incident
    assert results["webhook"]["status"] == "queued"
    [item] = ReviewRepository(store).list(account_id="acct-9")
    assert item.match_count == 2
    assert item.content_ids == [first["content_id"], second["content_id"]]
    assert JobRepository(store).counts() == {"queued": 2}
    assert receiver.requests == []  # nothing is sent inside the request

    unrelated = hook_client.post(
        "/v1/check", files={"file": ("y.png", png_bytes(2))}, headers=key
    ).json()
    assert unrelated["actions"] == [] and unrelated["action_results"] == []

    result = CliRunner().invoke(cli, ["--database-url", store_url(store), "worker", "--once"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["done"] == 2
    assert len(receiver.requests) == 2 and all(r["signature_ok"] for r in receiver.requests)
    payload = receiver.deliveries[f"webhook-{first['content_id']}"]
    assert payload["event"] == "check.decided"
    assert payload["verdict"] == "block" and payload["outcome"] == "match"
    assert payload["context"]["source_port"] == 51234
    assert payload["context"]["ip_address"] == "203.0.113.7"
    assert payload["context"]["client_timestamp"] == "2026-11-29T09:00:00+00:00"
    assert payload["received_at"].endswith("+00:00")
    assert payload["matches"][0]["bank"] == "known"
    assert payload["matches"][0]["external_id"] == "E1"
    assert payload["matches"][0]["signal_type"] in ("pdq", "md5", "sha1", "sha256")
    assert payload["review"]["review_id"] == item.id
    assert "image" not in json.dumps(payload)  # no content, only its description

    url = store_url(store)
    listed = CliRunner().invoke(cli, ["--database-url", url, "reviews", "list"])
    assert listed.exit_code == 0, listed.output
    assert [(i["account_id"], i["match_count"]) for i in json.loads(listed.output)] == [
        ("acct-9", 2)
    ]
    # The worker also seeds its periodic jobs (escalations, purge): count webhooks only.
    jobs = CliRunner().invoke(cli, ["--database-url", url, "jobs", "list", "--kind", "webhook"])
    assert json.loads(jobs.output)["counts"] == {"done": 2}
    bad = CliRunner().invoke(cli, ["--database-url", url, "webhooks", "replay"])
    assert bad.exit_code == 2 and "give a dead-letter ID or --all" in bad.output


def test_policy_with_webhook_but_no_url_fails_at_start(
    store: Store, settings: ServiceSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAFESTREAM_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("SAFESTREAM_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="policy uses the 'webhook' action"):
        create_app(store, settings=settings, policy=POLICY)
    monkeypatch.setenv("SAFESTREAM_WEBHOOK_URL", "gopher://example.com/")
    monkeypatch.setenv("SAFESTREAM_WEBHOOK_SECRET", SECRET)
    with pytest.raises(ConfigError, match="must be an http:// or https:// URL"):
        create_app(store, settings=settings, policy=POLICY)


def test_check_answer_says_when_a_nondisclosure_order_covers_the_user(
    store: Store, hook_client: TestClient, role_keys: dict[Role, str]
) -> None:
    from requests_support import new_request
    from safestream.requests.service import RequestService

    RequestService(store).create(
        new_request(identifiers=["acct-ndo"], non_disclosure=True), actor="test"
    )
    key = auth(role_keys[Role.INTEGRATOR])

    def check(seed: int, account: str) -> dict[str, object]:
        r = hook_client.post(
            "/v1/check",
            files={"file": ("x.png", png_bytes(seed))},
            data={"account_id": account},
            headers=key,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    covered = check(1, "acct-ndo")
    assert covered["verdict"] == "block" and covered["nondisclosure"] is True
    assert check(1, "acct-other")["nondisclosure"] is False
    unmatched = check(7, "acct-ndo")  # allowed content: nothing to keep quiet about
    assert unmatched["verdict"] == "allow" and unmatched["nondisclosure"] is False
