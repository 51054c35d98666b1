"""Submission, its log, timeliness and add-to-bank over HTTP (fake hotline on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cases_support import REPORTER_JSON as REPORTER
from cases_support import hashes, record_check
from cybertip_support import PASSWORD, USER, FakeCybertip, running
from safestream.auth import Role
from safestream.jobs.base import Backoff
from safestream.jobs.report_submit import ReportSubmitHandler
from safestream.jobs.worker import Worker, WorkerOptions
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from safestream.store.jobs import JobRepository


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCybertip]:
    with running() as f:
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_URL", f.url)
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_USER", USER)
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_PASSWORD", PASSWORD)
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_MAX_ATTEMPTS", "1")
        yield f


def confirmed_report(client: TestClient, store: Store, keys: dict[Role, dict[str, str]]) -> int:
    BankRepository(store).create_bank("internal-known")
    record_check(store, seed=1)
    reviewer, liaison = keys[Role.REVIEWER], keys[Role.LE_LIAISON]
    client.post("/v1/cases/sync", headers=reviewer)
    (case,) = client.get("/v1/cases", headers=reviewer).json()["cases"]
    url = f"/v1/cases/{case['id']}/decision"
    client.post(url, json={"status": "in_review", "reason_code": "assigned"}, headers=reviewer)
    ok = client.post(
        url,
        json={
            "status": "confirmed",
            "reason_code": "known_material_confirmed",
            "add_to_bank": "internal-known",
        },
        headers=reviewer,
    )
    assert ok.status_code == 200, ok.text
    values = {
        (e.signal_type, e.value) for e in BankRepository(store).iter_entries("internal-known")
    }
    assert ("md5", hashes(1)["md5"]) in values and ("pdq", hashes(1)["pdq"]) in values
    built = client.post(
        f"/v1/cases/{case['id']}/report",
        json={"reporter": REPORTER, "files_viewed_by_esp": True},
        headers=liaison,
    )
    assert built.status_code == 201, built.text
    return int(built.json()["id"])


def run_worker(store: Store) -> None:
    """Run the report_submit jobs that are ready, as ``safestream worker --once`` would."""
    h = ReportSubmitHandler.from_env(store)
    assert h is not None
    options = WorkerOptions(once=True, poll_interval_s=0.01, backoff=Backoff(0.0, 0.0))
    Worker(JobRepository(store), [h], options).run()


def test_submit_over_http_is_a_job(
    client: TestClient,
    store: Store,
    keys: dict[Role, dict[str, str]],
    fake: FakeCybertip,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    liaison, admin = keys[Role.LE_LIAISON], keys[Role.ADMIN]
    rid = confirmed_report(client, store, keys)
    url = f"/v1/reports/{rid}/submit"
    assert client.post(url, json={"override_reason": "x"}, headers=liaison).status_code == 422
    assert client.post(url, headers=keys[Role.REVIEWER]).status_code == 403
    # wrong credentials: accepted (the API cannot know), the job fails with a clear error
    monkeypatch.setenv("SAFESTREAM_CYBERTIP_PASSWORD", "wrong-password")
    queued = client.post(url, headers=liaison)
    assert queued.status_code == 202, queued.text
    body = queued.json()
    job_id = body["job"]["id"]
    assert body["created"] is True and body["job"]["kind"] == "report_submit"
    assert queued.headers["Location"] == body["location"] == f"/v1/jobs/{job_id}"
    assert body["job"]["status"] == "queued" and fake.calls == []  # nothing sent in the request
    # a second request while it is queued: the same job
    twice = client.post(url, headers=liaison)
    assert twice.status_code == 202 and twice.json()["job"]["id"] == job_id
    assert twice.json()["created"] is False
    run_worker(store)
    assert client.get(f"/v1/jobs/{job_id}", headers=keys[Role.REVIEWER]).status_code == 403
    assert client.get(f"/v1/jobs/{job_id}", headers=admin).status_code == 200
    failed = client.get(f"/v1/jobs/{job_id}", headers=liaison).json()
    assert failed["status"] == "dead" and "credentials" in failed["last_error"]
    assert failed["result"]["retryable"] is False
    assert len(fake.calls) == 1
    log = client.get(f"/v1/reports/{rid}/submissions", headers=liaison).json()
    assert log["job"]["id"] == job_id and log["job"]["status"] == "dead"
    assert log["submission"]["status"] == "pending"
    # configuration fixed: submitting again queues a new job, which files the report
    monkeypatch.setenv("SAFESTREAM_CYBERTIP_PASSWORD", PASSWORD)
    retry = client.post(url, headers=liaison)
    assert retry.status_code == 202 and retry.json()["created"] is True
    new_id = retry.json()["job"]["id"]
    assert new_id != job_id
    run_worker(store)
    done = client.get(f"/v1/jobs/{new_id}", headers=liaison).json()
    assert done["status"] == "done", done
    assert fake.in_state("finished") == [done["result"]["remote_report_id"]]
    again = client.post(url, headers=liaison)
    assert again.status_code == 409 and "already filed" in again.json()["detail"]
    log = client.get(f"/v1/reports/{rid}/submissions", headers=liaison).json()
    assert log["submission"]["status"] == "finished" and log["job"]["id"] == new_id
    # no evidence store here: nothing uploaded, so no fileDetails (they need a fileId)
    assert [e["response_status"] for e in log["exchanges"]] == [401, 200, 200]
    assert [e["step"] for e in log["exchanges"]] == ["submit", "submit", "finish"]
    assert client.get("/v1/reports/99999/submissions", headers=liaison).status_code == 404
    assert client.post("/v1/reports/99999/submit", headers=liaison).status_code == 404
    case = client.get(f"/v1/cases/{log['submission']['report_id']}", headers=liaison).json()
    assert case["status"] == "reported"
    assert JobRepository(store).counts() == {"dead": 1, "done": 1}


def test_submit_refusals_queue_nothing(
    client: TestClient,
    store: Store,
    keys: dict[Role, dict[str, str]],
    fake: FakeCybertip,
) -> None:
    liaison, reviewer = keys[Role.LE_LIAISON], keys[Role.REVIEWER]
    record_check(store, seed=1, surface="chat")  # chat without an excerpt: blocking finding
    client.post("/v1/cases/sync", headers=reviewer)
    (case,) = client.get("/v1/cases", headers=reviewer).json()["cases"]
    url = f"/v1/cases/{case['id']}/decision"
    client.post(url, json={"status": "in_review", "reason_code": "assigned"}, headers=reviewer)
    confirm = {"status": "confirmed", "reason_code": "known_material_confirmed"}
    assert client.post(url, json=confirm, headers=reviewer).status_code == 200
    built = client.post(
        f"/v1/cases/{case['id']}/report", json={"reporter": REPORTER}, headers=liaison
    )
    assert built.status_code == 201, built.text
    rid = built.json()["id"]
    blocked = client.post(f"/v1/reports/{rid}/submit", headers=liaison)
    assert blocked.status_code == 409 and "blocking findings" in blocked.json()["detail"]
    # filed by hand: the case is reported, the API never queues a submission
    reason = {"override_reason": "conversation held by the partner"}
    by_hand = client.post(
        f"/v1/reports/{rid}/submitted", json=reason | {"reference": "TIP-1"}, headers=liaison
    )
    assert by_hand.status_code == 200, by_hand.text
    reported = client.post(f"/v1/reports/{rid}/submit", json=reason, headers=liaison)
    assert reported.status_code == 409 and "'reported'" in reported.json()["detail"]
    assert JobRepository(store).counts() == {}
    assert fake.calls == []


def test_submit_without_configuration_is_a_clear_4xx(
    client: TestClient,
    store: Store,
    keys: dict[Role, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SAFESTREAM_CYBERTIP_URL", raising=False)
    rid = confirmed_report(client, store, keys)
    r = client.post(f"/v1/reports/{rid}/submit", headers=keys[Role.LE_LIAISON])
    assert r.status_code == 400 and "SAFESTREAM_CYBERTIP_URL" in r.json()["detail"]
    log = client.get(f"/v1/reports/{rid}/submissions", headers=keys[Role.LE_LIAISON]).json()
    assert log == {"report_id": rid, "submission": None, "exchanges": [], "job": None}
    assert JobRepository(store).counts() == {}


def test_openapi_describes_the_202(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/reports/{report_id}/submit"]["post"]
    assert "202" in op["responses"] and "report_submit" in op["description"]
    assert {"400", "404", "409"} <= set(op["responses"])


def test_stats_route_roles_and_shape(
    client: TestClient, store: Store, keys: dict[Role, dict[str, str]]
) -> None:
    confirmed_report(client, store, keys)
    for role in (Role.LE_LIAISON, Role.REVIEWER, Role.ADMIN):
        r = client.get("/v1/reports/stats", headers=keys[role])
        assert r.status_code == 200, (role, r.text)
    body = r.json()
    assert body["cases"] == 1
    assert body["stages"]["detected_to_reviewed"]["count"] == 1
    assert body["stages"]["submitted_to_finished"]["count"] == 0
    others = set(Role) - {Role.LE_LIAISON, Role.REVIEWER, Role.ADMIN}
    for role in others:
        assert client.get("/v1/reports/stats", headers=keys[role]).status_code == 403


def test_bad_add_to_bank_over_http(
    client: TestClient, store: Store, keys: dict[Role, dict[str, str]]
) -> None:
    record_check(store, seed=1)
    reviewer = keys[Role.REVIEWER]
    client.post("/v1/cases/sync", headers=reviewer)
    (case,) = client.get("/v1/cases", headers=reviewer).json()["cases"]
    url = f"/v1/cases/{case['id']}/decision"
    client.post(url, json={"status": "in_review", "reason_code": "assigned"}, headers=reviewer)
    body = {"status": "confirmed", "reason_code": "known_material_confirmed"}
    assert (
        client.post(url, json=body | {"add_to_bank": "nope"}, headers=reviewer).status_code == 404
    )
    assert client.post(url, json=body | {"add_to_bank": ""}, headers=reviewer).status_code == 422
    dismiss = {"status": "dismissed", "reason_code": "false_positive", "add_to_bank": "x"}
    assert client.post(url, json=dismiss, headers=reviewer).status_code == 400
    assert client.get(f"/v1/cases/{case['id']}", headers=reviewer).json()["status"] == "in_review"
