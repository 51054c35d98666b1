"""Law-enforcement requests: deadlines, workflow, escalation, SLA and signed packages."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from evidence_support import Clock, png
from safestream.actions.webhook import WebhookConfig
from safestream.errors import ConfigError, ConflictError, InputError, NotFoundError
from safestream.evidence.store import EvidenceStore
from safestream.requests.model import (
    DeadlineStandards,
    NewRequest,
    RequestType,
    Status,
    escalation_level,
)
from safestream.requests.package import build_package, load_signing_key, verify_package
from safestream.requests.service import RequestService
from safestream.store.audit import AuditRepository
from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from safestream.store.service import CheckRepository


def new(**kw: Any) -> NewRequest:
    base: dict[str, Any] = {
        "request_type": RequestType.PRODUCTION_ORDER,
        "agency": "Example Police Service",
        "officer": {"name": "Det. A. Example", "email": "a.example@police.example"},
        "legal_basis": "Production order 2026/17",
        "jurisdiction": "us",
        "identifiers": ["acct-1"],
        "data_categories": ["subscriber", "ip_logs"],
        "received_at": datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    }
    base.update(kw)
    return NewRequest(**base)


@pytest.fixture
def service(store: Store, clock: Clock) -> RequestService:
    return RequestService(store, clock=clock)


def test_default_deadlines(service: RequestService) -> None:
    std = service.create(new(), actor="k")
    assert std.deadline_at - std.received_at == timedelta(hours=24)
    assert std.status == "received" and not std.emergency
    emer = service.create(new(request_type=RequestType.EMERGENCY_DISCLOSURE), actor="k")
    assert emer.emergency and emer.deadline_at - emer.received_at == timedelta(hours=1)


def test_jurisdiction_presets(service: RequestService) -> None:
    eu = service.create(new(jurisdiction="EU"), actor="k")
    assert eu.preset == "eu-e-evidence"
    assert eu.deadline_at - eu.received_at == timedelta(days=10)
    eu_e = service.create(
        new(jurisdiction="eu-de", request_type=RequestType.EMERGENCY_DISCLOSURE), actor="k"
    )
    assert eu_e.deadline_at - eu_e.received_at == timedelta(hours=8)
    chosen = service.create(new(preset="eu-e-evidence"), actor="k")
    assert chosen.preset == "eu-e-evidence"
    with pytest.raises(InputError, match="unknown deadline preset"):
        service.create(new(preset="nowhere"), actor="k")


def test_deadline_is_timezone_safe_and_survives_restart(
    store: Store, clock: Clock, service: RequestService
) -> None:
    tokyo = timezone(timedelta(hours=9))
    r = service.create(new(received_at=datetime(2026, 3, 1, 18, 0, tzinfo=tokyo)), actor="k")
    again = RequestService(store, clock=clock).get(r.id)  # a fresh process
    assert again.received_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert again.deadline_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert again.deadline_at.tzinfo is not None


def test_configured_standards() -> None:
    std = DeadlineStandards.from_env(
        {
            "SAFESTREAM_LE_DEADLINES": json.dumps(
                {
                    "presets": {"uk": {"standard_hours": 48, "emergency_hours": 2}},
                    "jurisdictions": {"gb": "uk"},
                }
            ),
            "SAFESTREAM_LE_ESCALATE_AT": "0.5,0.1",
        }
    )
    assert std.preset_for("GB", None) == "uk"
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert std.deadline(t, emergency=False, preset="uk") == t + timedelta(hours=48)
    assert std.escalate_at == (0.5, 0.1)
    with pytest.raises(ConfigError):
        DeadlineStandards.from_env({"SAFESTREAM_LE_DEADLINES": "{bad"})
    with pytest.raises(ConfigError):
        DeadlineStandards.from_env({"SAFESTREAM_LE_ESCALATE_AT": "2"})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"agency": " "}, "agency"),
        ({"legal_basis": ""}, "legal_basis"),
        ({"identifiers": []}, "identifiers"),
        ({"data_categories": []}, "data_categories"),
        ({"officer": {"name": "x"}}, "officer"),
        ({"received_at": datetime(2026, 1, 1)}, "timezone"),
    ],
)
def test_missing_fields(change: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        new(**change)


def test_workflow(service: RequestService) -> None:
    r = service.create(new(), actor="k")
    with pytest.raises(ConflictError, match="cannot move to 'responded'"):
        service.transition(r.id, Status.RESPONDED, actor="k")
    r = service.transition(r.id, Status.VERIFIED, actor="k")
    assert r.verification == "verified"
    r = service.transition(r.id, Status.IN_PROGRESS, actor="k")
    r = service.transition(r.id, Status.RESPONDED, actor="k")
    assert r.responded_at is not None
    with pytest.raises(ConflictError, match="final"):
        service.transition(r.id, Status.REJECTED, actor="k", reason="late")
    other = service.create(new(), actor="k")
    with pytest.raises(InputError, match="reason"):
        service.transition(other.id, Status.REJECTED, actor="k")
    rejected = service.transition(other.id, Status.REJECTED, actor="k", reason="not verifiable")
    assert rejected.rejection_reason == "not verifiable"
    with pytest.raises(NotFoundError):
        service.transition(99999, Status.VERIFIED, actor="k")
    changes = AuditRepository(service.store).list_events(action="request.status")
    assert [e.detail["to"] for e in changes] == ["verified", "in_progress", "responded", "rejected"]


def test_escalation_levels() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    dl = t0 + timedelta(hours=24)
    assert escalation_level(t0, dl, t0 + timedelta(hours=11), (0.5, 0.25)) == []
    assert escalation_level(t0, dl, t0 + timedelta(hours=12), (0.5, 0.25)) == ["0.5"]
    assert escalation_level(t0, dl, t0 + timedelta(hours=25), (0.5, 0.25)) == [
        "0.5",
        "0.25",
        "overdue",
    ]


def test_escalation_fires_once_with_webhook(store: Store, clock: Clock) -> None:
    hook = WebhookConfig(url="http://127.0.0.1:9/hook", secret="s" * 32)
    service = RequestService(store, clock=clock, webhook=hook)
    r = service.create(new(received_at=clock.now), actor="k")
    assert service.escalate_due() == []
    clock.advance(timedelta(hours=13))
    fired = service.escalate_due()
    assert [(f["request_id"], f["level"]) for f in fired] == [(r.id, "0.5")]
    assert service.escalate_due() == []  # once only
    restarted = RequestService(store, clock=clock, webhook=hook)
    assert restarted.escalate_due() == []  # fired levels survive a restart
    clock.advance(timedelta(hours=12))
    assert [f["level"] for f in service.escalate_due()] == ["overdue"]
    jobs = JobRepository(store).recent(kinds=("webhook",))
    assert {j.idempotency_key for j in jobs} == {
        f"le-escalation-{r.id}-0.5",
        f"le-escalation-{r.id}-overdue",
    }
    assert all(j.payload["event"] == "le_request.escalation" for j in jobs)
    events = AuditRepository(store).list_events(action="request.escalation")
    assert [e.detail["level"] for e in events] == ["0.5", "overdue"]
    # A responded request is not escalated.
    done = service.create(new(received_at=clock.now), actor="k")
    for s in (Status.VERIFIED, Status.IN_PROGRESS, Status.RESPONDED):
        service.transition(done.id, s, actor="k")
    clock.advance(timedelta(days=2))
    assert all(f["request_id"] != done.id for f in service.escalate_due())


def test_escalation_without_webhook_is_audited(service: RequestService, clock: Clock) -> None:
    service.create(new(received_at=clock.now), actor="k")
    clock.advance(timedelta(days=2))
    fired = service.escalate_due()
    assert [f["level"] for f in fired] == ["overdue"] and fired[0]["job_id"] is None


def test_sla(service: RequestService, clock: Clock) -> None:
    t0 = clock.now
    fast = service.create(new(received_at=t0), actor="k")
    slow = service.create(new(received_at=t0), actor="k")
    service.create(new(received_at=t0), actor="k")
    service.create(new(received_at=t0 - timedelta(days=3)), actor="k")  # overdue
    for r, after in ((fast, timedelta(hours=2)), (slow, timedelta(hours=30))):
        clock.now = t0 + after
        for s in (Status.VERIFIED, Status.IN_PROGRESS, Status.RESPONDED):
            service.transition(r.id, s, actor="k")
    clock.now = t0 + timedelta(hours=20)
    stats = service.sla()
    assert stats["open"] == 2
    assert stats["open_by_time_left"]["overdue"] == 1
    assert stats["open_by_time_left"]["under_6h"] == 1
    assert stats["responded"] == 2
    assert stats["answered_within_deadline_share"] == 0.5
    assert stats["median_time_to_respond_hours"] == 16.0


def test_signed_package(
    store: Store, service: RequestService, evidence: EvidenceStore, tmp_path: Any
) -> None:
    CheckRepository(store).record(
        content_id="c-1",
        account_id="acct-1",
        ip_address="198.51.100.4",
        source_port=40222,
        client_timestamp=datetime(2026, 2, 1, 8, 0, tzinfo=UTC),
        outcome="match",
        signals={},
        matches=[],
        reasons=[],
    )
    CheckRepository(store).record(
        content_id="c-2", account_id="other", outcome="no_match", signals={}, matches=[], reasons=[]
    )
    eid = evidence.preserve(
        png(3),
        actor="k",
        basis="report",
        legal_basis="report 1",
        account_id="acct-1",
        media_type="image/png",
    ).id
    r = service.create(new(), actor="k")
    key = load_signing_key(tmp_path / "sign.pem", create=True)
    assert (tmp_path / "sign.pem").stat().st_mode & 0o777 == 0o600
    data = build_package(service, evidence, r.id, key, actor="k", reason="order 2026/17")
    manifest = verify_package(data)
    assert set(manifest["files"]) == {
        "request.json",
        "checks.json",
        f"evidence/{eid}.json",
        f"evidence/{eid}.bin",
    }
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        checks = json.loads(zf.read("checks.json"))
        assert [c["content_id"] for c in checks] == ["c-1"]
        assert checks[0]["ip_address"] == "198.51.100.4" and checks[0]["source_port"] == 40222
        assert zf.read(f"evidence/{eid}.bin") == png(3)
    # Tampering with any file, or the manifest, is detected.
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for item in src.namelist():
            body = src.read(item)
            dst.writestr(item, body + b" " if item == "checks.json" else body)
    with pytest.raises(InputError, match=r"checks\.json"):
        verify_package(buf.getvalue())
    other = load_signing_key(tmp_path / "other.pem", create=True)
    from cryptography.hazmat.primitives import serialization

    other_pub = (
        other.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    with pytest.raises(InputError, match="signature"):
        verify_package(data, other_pub)
    actions = [e.action for e in AuditRepository(store).list_events()]
    assert "evidence.export" in actions and actions[-1] == "request.export"
