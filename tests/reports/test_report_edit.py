"""Editing a stored report (JSON merge patch): service, ``PATCH /v1/reports/{id}``, CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient

from api_support import auth
from cases_support import T0, record_check
from safestream.auth import Role
from safestream.cases.model import CaseConfig
from safestream.cases.service import CaseService
from safestream.errors import ConflictError, NotFoundError
from safestream.jobs.report_submit import enqueue_submit
from safestream.reports.build import BuildOptions
from safestream.reports.model import Contact, Reporter
from safestream.reports.service import ReportService, ReportValidationError, merge_patch
from safestream.store.audit import AuditRepository
from safestream.store.cases import SubmissionRepository
from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from safestream.store.service import KeyRepository

REPORTER = Reporter(
    organisation="Example Platform",
    contact=Contact(name="Ada Example", email="trust@example.com"),
    emergency_contact=Contact(name="On Call", phone="+1 555 0199"),
)

#: What a person adds before submission (synthetic people, documentation values).
COMPLETION: dict[str, Any] = {
    "incident": {"escalate_to_high_priority": True, "escalation_reason": "ongoing contact"},
    "victims": [{"screen_name": "victim-example", "esp_identifier": "acct-9"}],
    "intended_recipients": [{"esp_identifier": "acct-8"}],
    "chat": {"chat_client": "Example Chat", "excerpt": "synthetic excerpt <b>&"},
    "additional_info": "Reviewed by the trust team.",
}


def built(store: Store) -> tuple[ReportService, int]:
    record_check(store, seed=1, surface="chat")
    cases = CaseService(store, CaseConfig(), clock=lambda: T0 + timedelta(minutes=5))
    cases.sync()
    (case,) = cases.repo.list()
    cases.decide(case.id, "in_review", reason_code="assigned", actor="r")
    cases.decide(case.id, "confirmed", reason_code="known_material_confirmed", actor="r")
    reports = ReportService(cases)
    stored = reports.build(case.id, BuildOptions(reporter=REPORTER), actor="builder")
    return reports, stored.id


def body_of(reports: ReportService, report_id: int) -> dict[str, Any]:
    return reports.repo.get_report(report_id)[1]


def amends(store: Store) -> list[Any]:
    return AuditRepository(store).list_events(action="report.amend")


def test_merge_patch_semantics() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    patch = {"a": None, "b": {"c": None, "x": 4}, "e": [3], "f": {"g": None}}
    assert merge_patch(target, patch) == {"b": {"d": 3, "x": 4}, "e": [3], "f": {}}
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}  # unchanged


def test_edit_completes_a_report(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    reports, rid = built(store)
    before = reports.get(rid)
    assert "chat_without_conversation" in {f.code for f in before.findings}
    person = before.report.persons[0].model_dump(mode="json")
    person |= {
        "emails": [{"value": "someone@example.com", "verified": True}],
        "phones": [{"value": "+1 555 0142", "verified": False}],
        "device_ids": [{"id_type": "Android ID", "value": "0123456789abcdef"}],
        "account_disabled": {
            "disabled_at": "2026-03-01T10:00:00+00:00",
            "user_notified": False,
        },
    }
    with caplog.at_level(logging.INFO, logger="safestream.reports.service"):
        stored, changed = reports.amend(rid, COMPLETION | {"persons": [person]}, actor="ada")
    assert changed == [
        "additional_info",
        "chat",
        "incident",
        "intended_recipients",
        "persons",
        "victims",
    ]
    assert "chat_without_conversation" not in {f.code for f in stored.findings}
    again = reports.get(rid).report
    assert again.victims[0].screen_name == "victim-example"
    assert again.incident.escalate_to_high_priority
    assert again.incident.platform == before.report.incident.platform  # merged, not replaced
    assert again.persons[0].account_disabled is not None
    assert again.persons[0].account_disabled.user_notified is False
    assert again.persons[0].emails[0].verified is True
    assert again.files == before.report.files
    (event,) = amends(store)
    assert event.actor == "ada" and event.object_id == str(rid)
    assert event.detail["fields"] == changed
    text = json.dumps(event.detail) + event.reason
    assert "victim-example" not in text and "synthetic excerpt" not in text
    logged = " ".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "report edited" in logged and "victim-example" not in logged
    # null removes: the chat goes, the default comes back
    stored, changed = reports.amend(rid, {"chat": None}, actor="ada")
    assert changed == ["chat"] and stored.report.chat is None
    # an edit that changes nothing writes nothing
    assert (
        reports.amend(rid, {"additional_info": COMPLETION["additional_info"]}, actor="ada")[1] == []
    )
    assert len(amends(store)) == 2


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"victims": "acct-9"}, "victims"),  # wrong type
        ({"incident": {"escalate_to_high_priority": "perhaps"}}, "incident.escalate_to_high"),
        ({"victim": [{"screen_name": "x"}]}, "victim"),  # unknown field
        ({"persons": [{"nickname": "x"}]}, "persons[0].nickname"),
        ({"incident": {"incident_date_time": "2026-03-01T09:00:00"}}, "incident_date_time"),
        ({"additional_info": "x" * 100_001}, "additional_info"),
        ({"persons": [{"screen_name": "x" * 201}]}, "persons[0].screen_name"),
        ({"reporter": None}, "reporter"),  # a required field removed
        ({"case_id": 424242}, "case_id"),
        ({"live_streams": [{"ended_at": "2026-03-01T09:00:00Z", "started_at": "x"}]}, "live"),
    ],
)
def test_bad_patch_names_the_field_and_writes_nothing(
    store: Store, patch: dict[str, Any], field: str
) -> None:
    reports, rid = built(store)
    before = body_of(reports, rid)
    with pytest.raises(ReportValidationError) as err:
        reports.amend(rid, patch, actor="ada")
    assert field in str(err.value)
    assert any(field.split(".")[0].split("[")[0] in e["field"] for e in err.value.errors)
    assert body_of(reports, rid) == before
    assert amends(store) == []


def test_not_an_object(store: Store) -> None:
    reports, rid = built(store)
    for patch in ([], "x", 3, None):
        with pytest.raises(ReportValidationError):
            reports.amend(rid, patch, actor="ada")
    with pytest.raises(NotFoundError):
        reports.amend(rid + 1000, {"additional_info": "x"}, actor="ada")


def test_refused_once_submitted_or_submitting(store: Store) -> None:
    reports, rid = built(store)
    subs = SubmissionRepository(store)
    patch = {"additional_info": "late"}
    # a queued submission job
    job, created = enqueue_submit(store, rid, actor="ada")
    assert created
    with pytest.raises(ConflictError, match="queued"):
        reports.amend(rid, patch, actor="ada")
    running = JobRepository(store).claim("test-worker", lease_s=60)
    assert running is not None and running.id == job.id
    with pytest.raises(ConflictError, match="running"):
        reports.amend(rid, patch, actor="ada")
    store_body = body_of(reports, rid)
    # a submission that already sent /submit
    _finish_job(store, job.id)
    subs.get_or_create(rid)
    subs.update(rid, status="in_progress", remote_report_id="R-1")
    with pytest.raises(ConflictError, match="being filed"):
        reports.amend(rid, patch, actor="ada")
    # retracted: editable again
    subs.update(rid, status="retracted", remote_report_id=None)
    assert reports.amend(rid, patch, actor="ada")[1] == ["additional_info"]
    subs.update(rid, status="finished", remote_report_id="R-2")
    with pytest.raises(ConflictError, match="filed"):
        reports.amend(rid, {"additional_info": "later"}, actor="ada")
    assert body_of(reports, rid)["additional_info"] == "late"
    assert store_body["additional_info"] is None
    assert len(amends(store)) == 1


def test_refused_when_marked_submitted(store: Store) -> None:
    reports, rid = built(store)
    reports.mark_submitted(rid, actor="ada", reference="manual-1", override_reason="filed by hand")
    with pytest.raises(ConflictError, match="already reported"):
        reports.amend(rid, {"additional_info": "x"}, actor="ada")
    assert amends(store) == []


def _finish_job(store: Store, job_id: int) -> None:
    """End a queued job as a worker would have (so the report is no longer queued)."""
    from sqlalchemy import update

    from safestream.store.models import JobRow

    with store.session() as s:
        s.execute(update(JobRow).where(JobRow.id == job_id).values(status="done"))


# -- over HTTP -----------------------------------------------------------------


def test_patch_route(client: TestClient, store: Store) -> None:
    reports, rid = built(store)
    keys = KeyRepository(store)
    liaison = auth(keys.create(Role.LE_LIAISON.value, "liaison")[0])
    reviewer = auth(keys.create(Role.REVIEWER.value, "reviewer")[0])
    url = f"/v1/reports/{rid}"
    assert client.patch(url, json=COMPLETION).status_code == 401
    assert client.patch(url, json=COMPLETION, headers=reviewer).status_code == 403
    r = client.patch(
        url,
        content=json.dumps(COMPLETION),
        headers=liaison | {"content-type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["report"]["victims"][0]["screen_name"] == "victim-example"
    assert "chat_without_conversation" not in {f["code"] for f in out["findings"]}
    assert out["changed"] == sorted(COMPLETION)
    assert (
        client.get(url, headers=liaison).json()["report"]["additional_info"]
        == (COMPLETION["additional_info"])
    )
    before = body_of(reports, rid)
    for bad, field in (
        ({"victims": [{"screen_name": 5}]}, "victims[0].screen_name"),
        ({"surprise": 1}, "surprise"),
        ({"files": [{"upload_date_time": "2026-03-01T09:00:00"}]}, "files[0].upload_date_time"),
        ({"additional_info": "x" * 100_001}, "additional_info"),
    ):
        r = client.patch(url, json=bad, headers=liaison)
        assert r.status_code == 422, r.text
        assert field in r.json()["detail"]
        assert field in [e["field"] for e in r.json()["errors"]]
    assert client.patch(url, json=[1], headers=liaison).status_code == 422
    assert client.patch(url, content=b"{not json", headers=liaison).status_code == 422
    assert client.patch("/v1/reports/999999", json={}, headers=liaison).status_code == 404
    assert body_of(reports, rid) == before
    reports.mark_submitted(rid, actor="ada", reference="manual-1", override_reason="by hand")
    r = client.patch(url, json={"additional_info": "x"}, headers=liaison)
    assert r.status_code == 409 and "reported" in r.json()["detail"]
    assert body_of(reports, rid) == before
    assert len(amends(store)) == 1


# -- CLI -----------------------------------------------------------------------


def test_cli_edit(invoke: Callable[..., Result], tmp_path: Path) -> None:
    store = Store.open(data_dir=tmp_path / "data")
    try:
        reports, rid = built(store)
        before = body_of(reports, rid)
    finally:
        store.dispose()
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps(COMPLETION), encoding="utf-8")
    r = invoke("reports", "edit", str(rid), str(patch))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["changed"] == sorted(COMPLETION)
    assert out["report"]["chat"]["excerpt"] == COMPLETION["chat"]["excerpt"]
    bad = tmp_path / "bad.json"
    for text in ('{"victims": [{"screen_name": 5}]}', "[1, 2]", "{oops"):
        bad.write_text(text, encoding="utf-8")
        r = invoke("reports", "edit", str(rid), str(bad))
        assert r.exit_code == 2 and "error:" in r.output
    bad.write_text('{"incident": {"incident_date_time": "2026-03-01T09:00:00"}}', encoding="utf-8")
    r = invoke("reports", "edit", str(rid), str(bad))
    assert r.exit_code == 2 and "incident.incident_date_time" in r.output
    store = Store.open(data_dir=tmp_path / "data")
    try:
        after = body_of(ReportService(CaseService(store, CaseConfig())), rid)
        assert [(v["esp_identifier"], v["screen_name"]) for v in after["victims"]] == [
            ("acct-9", "victim-example")
        ]
        assert after["persons"] == before["persons"]
        (event,) = amends(store)
        assert event.actor.startswith("cli:")
    finally:
        store.dispose()
