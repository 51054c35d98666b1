"""Response packages hold the cases and reports of the named identifiers; NDOs are enforced."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api_support import auth
from cases_support import record_check
from evidence_support import Clock, custody_app
from requests_support import new_request
from safestream.auth import Role
from safestream.cases.model import CaseConfig
from safestream.cli import cli
from safestream.errors import InputError, NotFoundError
from safestream.evidence.store import EvidenceStore
from safestream.requests.model import NewRequest, Status
from safestream.requests.nondisclosure import identifiers_of, normalise
from safestream.requests.package import build_package, load_signing_key, verify_package
from safestream.requests.service import RequestService
from safestream.store.audit import AuditRepository
from safestream.store.cases import CaseRepository
from safestream.store.db import Store
from safestream.store.service import KeyRepository


def new(clock: Clock, **kw: Any) -> NewRequest:
    return new_request(clock.now, **kw)


@pytest.fixture
def service(store: Store, clock: Clock) -> RequestService:
    return RequestService(store, clock=clock)


def _files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_package_holds_cases_and_reports_of_the_identifiers(
    store: Store, service: RequestService, evidence: EvidenceStore, clock: Clock, tmp_path: Path
) -> None:
    record_check(store, seed=1, account="acct-1", ip="203.0.113.7")
    record_check(store, seed=2, account="acct-2", ip="203.0.113.99")  # named by its IP
    record_check(store, seed=3, account="acct-3", ip="203.0.113.50")  # not named
    cases = CaseRepository(store)
    cases.ingest(CaseConfig())
    by_account = {c.account_id: c for c in cases.list()}
    assert set(by_account) == {"acct-1", "acct-2", "acct-3"}
    report_id = cases.add_report(by_account["acct-1"].id, {"summary": "synthetic"}, actor="k")
    other_report = cases.add_report(by_account["acct-3"].id, {"summary": "other"}, actor="k")
    r = service.create(new(clock, identifiers=["acct-1", "203.0.113.99"]), actor="k")
    key = load_signing_key(tmp_path / "sign.pem", create=True)
    data = build_package(service, evidence, r.id, key, actor="k", reason="order 2026/17")
    manifest = verify_package(data)
    files = _files(data)
    wanted_cases = {by_account["acct-1"].id, by_account["acct-2"].id}
    assert {n for n in files if n.startswith("cases/")} == {f"cases/{i}.json" for i in wanted_cases}
    assert {n for n in files if n.startswith("reports/")} == {f"reports/{report_id}.json"}
    assert f"reports/{other_report}.json" not in manifest["files"]
    assert manifest["cases"] == 2 and manifest["reports"] == 1
    assert manifest["non_disclosure"] is False and "NON-DISCLOSURE.txt" not in files
    case1 = json.loads(files[f"cases/{by_account['acct-1'].id}.json"])
    assert case1["account_id"] == "acct-1" and len(case1["detections"]) == 1
    assert case1["detections"][0]["record"]["context"]["ip_address"] == "203.0.113.7"
    report = json.loads(files[f"reports/{report_id}.json"])
    assert report["body"] == {"summary": "synthetic"} and report["case_id"] == case1["id"]
    (export,) = AuditRepository(store).list_events(action="request.export")
    assert sorted(export.detail["cases"]) == sorted(wanted_cases)
    assert export.detail["reports"] == [report_id]


def test_tampered_case_file_is_detected(
    store: Store, service: RequestService, clock: Clock, tmp_path: Path
) -> None:
    record_check(store, seed=1, account="acct-1")
    CaseRepository(store).ingest(CaseConfig())
    r = service.create(new(clock), actor="k")
    key = load_signing_key(tmp_path / "sign.pem", create=True)
    data = build_package(service, None, r.id, key, actor="k", reason="order")
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for name in src.namelist():
            body = src.read(name)
            dst.writestr(
                name, body.replace(b"acct-1", b"acct-9") if name.startswith("cases/") else body
            )
    with pytest.raises(InputError, match=r"cases/\d+\.json does not match"):
        verify_package(buf.getvalue())


def test_nondisclosure_applies_to_open_requests_only(service: RequestService, clock: Clock) -> None:
    r = service.create(
        new(clock, identifiers=["Acct-NDO", "user-x", "2001:DB8:0::1"], non_disclosure=True),
        actor="k",
    )
    service.create(new(clock, identifiers=["acct-open"]), actor="k")  # no NDO
    assert service.nondisclosure_applies(["acct-ndo"])  # case-folded
    assert service.nondisclosure_applies([None, "nobody", " USER-X "])
    assert service.nondisclosure_applies(["2001:db8::1"])  # canonical IP
    assert not service.nondisclosure_applies(["acct-open", "2001:db8::2", None])
    assert not service.nondisclosure_applies([])
    for s in (Status.VERIFIED, Status.IN_PROGRESS, Status.RESPONDED):
        service.transition(r.id, s, actor="k")
    assert not service.nondisclosure_applies(["acct-ndo"])  # the request is closed


def test_identifier_helpers() -> None:
    assert identifiers_of({"account_id": "a", "username": "", "ip_address": "192.0.2.1"}) == [
        "a",
        "192.0.2.1",
    ]

    class Ctx:
        account_id = None
        username = "u"
        ip_address = None

    assert identifiers_of(Ctx()) == ["u"]
    assert normalise(" 192.0.2.1 ") == "192.0.2.1" and normalise("Alice") == "alice"
    assert normalise("2001:DB8:0:0::1") == "2001:db8::1"


def test_clearing_an_ndo_needs_a_reason_and_is_audited(
    store: Store, service: RequestService, clock: Clock
) -> None:
    r = service.create(new(clock, non_disclosure=True), actor="k")
    with pytest.raises(InputError, match="needs a reason"):
        service.set_nondisclosure(r.id, False, actor="k", reason=" ")
    assert service.get(r.id).non_disclosure and service.nondisclosure_applies(["acct-1"])
    assert AuditRepository(store).list_events(action="request.nondisclosure_cleared") == []
    cleared = service.set_nondisclosure(r.id, False, actor="k", reason="order lifted 2026/99")
    assert not cleared.non_disclosure and not service.nondisclosure_applies(["acct-1"])
    (event,) = AuditRepository(store).list_events(action="request.nondisclosure_cleared")
    assert event.reason == "order lifted 2026/99" and event.detail == {"from": True, "to": False}
    service.set_nondisclosure(r.id, True, actor="k")
    assert len(AuditRepository(store).list_events(action="request.nondisclosure_set")) == 1
    with pytest.raises(NotFoundError):
        service.set_nondisclosure(99999, True, actor="k")
    assert AuditRepository(store).verify().ok


def test_package_and_api_mark_the_ndo(
    store: Store,
    service: RequestService,
    evidence: EvidenceStore,
    clock: Clock,
    tmp_path: Path,
) -> None:
    r = service.create(new(clock, non_disclosure=True), actor="k")
    key = load_signing_key(tmp_path / "sign.pem", create=True)
    data = build_package(service, None, r.id, key, actor="k", reason="order")
    manifest = verify_package(data)
    assert manifest["non_disclosure"] is True
    assert "NON-DISCLOSURE.txt" in manifest["files"]
    assert b"NON-DISCLOSURE ORDER" in _files(data)["NON-DISCLOSURE.txt"]
    assert json.loads(_files(data)["request.json"])["non_disclosure_notice"].startswith(
        "NON-DISCLOSURE ORDER"
    )
    lead = KeyRepository(store).create(Role.LE_LIAISON.value, "lead")[0]
    h = auth(lead)
    with TestClient(custody_app(store, evidence, service)) as client:
        shown = client.get(f"/v1/requests/{r.id}", headers=h).json()
        assert (
            shown["non_disclosure"] is True and "NON-DISCLOSURE" in shown["non_disclosure_notice"]
        )
        url = f"/v1/requests/{r.id}/nondisclosure"
        refused = client.post(url, json={"non_disclosure": False}, headers=h)
        assert refused.status_code == 400 and "reason" in refused.json()["detail"]
        assert client.get(f"/v1/requests/{r.id}", headers=h).json()["non_disclosure"] is True
        bad = client.post(url, json={"reason": "x"}, headers=h)
        assert bad.status_code == 422
        ok = client.post(
            url, json={"non_disclosure": False, "reason": "lifted by order 7"}, headers=h
        )
        assert ok.status_code == 200 and ok.json()["non_disclosure"] is False
        assert ok.json()["non_disclosure_notice"] is None
        missing = client.post(
            "/v1/requests/99999/nondisclosure", json={"non_disclosure": True}, headers=h
        )
        assert missing.status_code == 404
    (event,) = AuditRepository(store).list_events(action="request.nondisclosure_cleared")
    assert event.actor.startswith("api_key:") and event.reason == "lifted by order 7"


def test_cli_show_announces_the_ndo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFESTREAM_EVIDENCE_DIR", str(tmp_path / "ev"))
    data = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    store = Store.open(data_dir=tmp_path / "data")
    try:
        clock = Clock()
        rid = RequestService(store).create(new(clock, non_disclosure=True), actor="k").id
        plain = RequestService(store).create(new(clock), actor="k").id
    finally:
        store.dispose()
    shown = runner.invoke(cli, [*data, "requests", "show", str(rid)])
    assert shown.exit_code == 0, shown.output
    assert "*** NON-DISCLOSURE ORDER" in shown.stderr
    assert json.loads(shown.stdout)["non_disclosure"] is True
    quiet = runner.invoke(cli, [*data, "requests", "show", str(plain)])
    assert "NON-DISCLOSURE" not in quiet.stderr
    refused = runner.invoke(cli, [*data, "requests", "nondisclosure", str(rid), "--clear"])
    assert refused.exit_code != 0 and "needs a reason" in refused.output
    cleared = runner.invoke(
        cli, [*data, "requests", "nondisclosure", str(rid), "--clear", "--reason", "lifted 7"]
    )
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["non_disclosure"] is False
