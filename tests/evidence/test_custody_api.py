"""The requests, evidence and audit routes: roles, reasons, blurring, bad input."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api_support import auth
from evidence_support import Clock, custody_app, png
from safestream.auth import Role
from safestream.evidence.store import EvidenceStore
from safestream.requests.service import RequestService
from safestream.store.audit import AuditRepository
from safestream.store.db import Store
from safestream.store.service import KeyRepository

REQUEST: dict[str, Any] = {
    "type": "production_order",
    "agency": "Example Police Service",
    "officer": {"name": "Det. A. Example", "email": "a.example@police.example"},
    "legal_basis": "Production order 2026/17",
    "jurisdiction": "us",
    "identifiers": ["acct-1"],
    "data_categories": ["subscriber"],
    "received_at": "2026-03-01T09:00:00+00:00",
}


@pytest.fixture
def client(store: Store, evidence: EvidenceStore, clock: Clock) -> Iterator[TestClient]:
    app = custody_app(store, evidence, RequestService(store, clock=clock))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def keys(store: Store) -> dict[Role, str]:
    repo = KeyRepository(store)
    return {role: repo.create(role.value, f"test {role.value}")[0] for role in Role}


def fill(path: str) -> str:
    return (
        path.replace("{request_id}", "999999")
        .replace("{evidence_id}", "no-such-evidence")
        .replace("{hold_id}", "999999")
    )


def test_every_custody_route_with_every_role(client: TestClient, keys: dict[Role, str]) -> None:
    spec = client.get("/openapi.json").json()
    ours = [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if path.startswith(("/v1/requests", "/v1/evidence", "/v1/audit"))
    ]
    assert len(ours) >= 15
    for method, path, op in ours:
        allowed = set(op["x-roles"])
        assert "admin" in allowed and "public" not in allowed
        url = fill(path)
        assert client.request(method, url).status_code == 401, (method, path)
        for role, key in keys.items():
            r = client.request(method, url, headers=auth(key))
            if role.value in allowed:
                assert r.status_code not in (401, 403), (method, path, role)
                assert r.status_code < 500, (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role)
    by_path = {(m, p): set(op["x-roles"]) for m, p, op in ours}
    assert by_path[("GET", "/v1/audit/events")] == {"admin", "auditor"}
    assert by_path[("GET", "/v1/evidence/{evidence_id}/content")] == {
        "admin",
        "le_liaison",
        "reviewer",
    }
    assert by_path[("POST", "/v1/requests")] == {"admin", "le_liaison"}
    assert by_path[("POST", "/v1/requests/{request_id}/nondisclosure")] == {"admin", "le_liaison"}
    assert by_path[("GET", "/v1/evidence/storage/check")] == {"admin", "le_liaison"}


def test_request_lifecycle_over_http(client: TestClient, keys: dict[Role, str]) -> None:
    h = auth(keys[Role.LE_LIAISON])
    r = client.post("/v1/requests", json=REQUEST, headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["deadline_at"] == "2026-03-02T09:00:00+00:00"
    assert body["seconds_left"] == 24 * 3600
    rid = body["id"]
    bad = client.post(f"/v1/requests/{rid}/status", json={"status": "responded"}, headers=h)
    assert bad.status_code == 409 and "cannot move" in bad.json()["detail"]
    for status in ("verified", "in_progress", "responded"):
        ok = client.post(f"/v1/requests/{rid}/status", json={"status": status}, headers=h)
        assert ok.status_code == 200 and ok.json()["status"] == status
    sla = client.get("/v1/requests/sla", headers=h).json()
    assert sla["responded"] == 1 and sla["answered_within_deadline_share"] == 1.0
    listed = client.get("/v1/requests", params={"open": "true"}, headers=h).json()
    assert listed["requests"] == []


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        ("agency", "agency"),
        ("officer", "officer"),
        ("received_at", "received_at"),
        ("identifiers", "identifiers"),
        ("type", "type"),
    ],
)
def test_missing_fields_are_precise_422(
    client: TestClient, keys: dict[Role, str], drop: str, field: str
) -> None:
    body = {k: v for k, v in REQUEST.items() if k != drop}
    r = client.post("/v1/requests", json=body, headers=auth(keys[Role.LE_LIAISON]))
    assert r.status_code == 422
    assert any(field in err["loc"] for err in r.json()["detail"])


def test_naive_time_and_bad_values(client: TestClient, keys: dict[Role, str]) -> None:
    h = auth(keys[Role.LE_LIAISON])
    naive = client.post(
        "/v1/requests", json={**REQUEST, "received_at": "2026-03-01T09:00:00"}, headers=h
    )
    assert naive.status_code == 422
    empty = client.post("/v1/requests", json={**REQUEST, "identifiers": []}, headers=h)
    assert empty.status_code == 422
    preset = client.post("/v1/requests", json={**REQUEST, "preset": "mars"}, headers=h)
    assert preset.status_code == 400 and "unknown deadline preset" in preset.json()["detail"]
    no_contact = client.post("/v1/requests", json={**REQUEST, "officer": {"name": "x"}}, headers=h)
    assert no_contact.status_code == 400 and "officer" in no_contact.json()["detail"]


def _preserve(client: TestClient, key: str, data: bytes) -> str:
    r = client.post(
        "/v1/evidence",
        files={"file": ("x.png", data, "image/png")},
        data={"basis": "report", "legal_basis": "report 1", "account_id": "acct-1"},
        headers=auth(key),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_viewing_needs_reason_and_is_blurred_and_audited(
    client: TestClient, keys: dict[Role, str], store: Store
) -> None:
    data = png(5)
    eid = _preserve(client, keys[Role.LE_LIAISON], data)
    rev = auth(keys[Role.REVIEWER])
    no_reason = client.get(f"/v1/evidence/{eid}/content", headers=rev)
    assert no_reason.status_code == 422
    blurred = client.get(f"/v1/evidence/{eid}/content", params={"reason": "confirm"}, headers=rev)
    assert blurred.status_code == 200 and blurred.headers["content-type"] == "image/png"
    shown = np.asarray(Image.open(io.BytesIO(blurred.content)))
    assert shown.ndim == 2  # greyscale
    original = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)
    # Blurred: far less detail than the original (mean absolute gradient).
    assert (
        np.abs(np.diff(shown.astype(np.float64), axis=1)).mean()
        < 0.5 * np.abs(np.diff(original, axis=1)).mean()
    )
    raw = client.get(
        f"/v1/evidence/{eid}/content",
        params={"reason": "need detail", "original": "true"},
        headers=rev,
    )
    assert raw.content == data
    events = AuditRepository(store).list_events(object_id=eid)
    assert [e.action for e in events] == [
        "evidence.preserve",
        "evidence.view",
        "evidence.view_original",
    ]
    assert events[1].reason == "confirm" and "reviewer" in events[1].actor
    audit = client.get("/v1/audit/events", headers=auth(keys[Role.AUDITOR])).json()
    # the key fixtures' grants are audited too (api_key.create)
    assert len([e for e in audit["events"] if e["object_type"] == "evidence"]) == 3
    assert client.get("/v1/audit/verify", headers=auth(keys[Role.AUDITOR])).json()["ok"]


def test_tampered_evidence_is_a_clear_error(
    client: TestClient,
    keys: dict[Role, str],
    evidence: EvidenceStore,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """409 (never a 500, never the bytes) on every route that reads it, audited."""
    eid = _preserve(client, keys[Role.LE_LIAISON], png(6))
    path: Path = evidence.directory / evidence.record(eid).path
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    r = client.get(
        f"/v1/evidence/{eid}/content",
        params={"reason": "look", "original": "true"},
        headers=auth(keys[Role.REVIEWER]),
    )
    assert r.status_code == 409
    assert r.json()["kind"] == "evidence_integrity"
    assert "authentication failed" in r.json()["detail"]
    # A response package that would hold it fails the same way, before any ZIP is made.
    monkeypatch.setenv("SAFESTREAM_EXPORT_SIGNING_KEY", str(tmp_path / "signing.pem"))
    from safestream.requests.package import load_signing_key

    load_signing_key(tmp_path / "signing.pem", create=True)
    h = auth(keys[Role.LE_LIAISON])
    rid = client.post("/v1/requests", json=REQUEST, headers=h).json()["id"]
    r = client.post(f"/v1/requests/{rid}/export", json={"reason": "order 2026/17"}, headers=h)
    assert r.status_code == 409, r.text
    assert r.json()["kind"] == "evidence_integrity"
    # Each failed read is on the audit chain, after the access attempt it follows.
    events = [
        e
        for e in AuditRepository(store).list_events(object_id=eid)
        if e.object_type == "evidence" and e.action != "evidence.preserve"
    ]
    actions = [e.action for e in events]
    assert actions == [
        "evidence.view_original",
        "evidence.integrity_failure",
        "evidence.export",
        "evidence.integrity_failure",
    ]
    assert "authentication failed" in events[1].detail["error"]
    assert AuditRepository(store).verify().ok


def test_non_image_needs_original(client: TestClient, keys: dict[Role, str]) -> None:
    r = client.post(
        "/v1/evidence",
        files={"file": ("chat.txt", b"chat log line 1", "text/plain")},
        data={"basis": "preservation_request", "legal_basis": "2703(f) letter"},
        headers=auth(keys[Role.LE_LIAISON]),
    )
    eid = r.json()["id"]
    h = auth(keys[Role.LE_LIAISON])
    assert (
        client.get(f"/v1/evidence/{eid}/content", params={"reason": "look"}, headers=h).status_code
        == 422
    )
    got = client.get(
        f"/v1/evidence/{eid}/content", params={"reason": "look", "original": True}, headers=h
    )
    assert got.content == b"chat log line 1"


def test_holds_over_http(client: TestClient, keys: dict[Role, str]) -> None:
    h = auth(keys[Role.LE_LIAISON])
    eid = _preserve(client, keys[Role.LE_LIAISON], png(7))
    missing = client.post(f"/v1/evidence/{eid}/holds", json={"basis": "report"}, headers=h)
    assert missing.status_code == 422
    hold = client.post(
        f"/v1/evidence/{eid}/holds",
        json={"basis": "preservation_request", "legal_basis": "letter 3"},
        headers=h,
    )
    assert hold.status_code == 201
    hid = hold.json()["id"]
    renewed = client.post(f"/v1/evidence/holds/{hid}/renew", json={"reason": "letter 4"}, headers=h)
    assert renewed.status_code == 200 and renewed.json()["renewals"] == 1
    released = client.post(f"/v1/evidence/holds/{hid}/release", json={"reason": "done"}, headers=h)
    assert released.status_code == 200
    assert len(client.get(f"/v1/evidence/{eid}", headers=h).json()["holds"]) == 2


def test_export_over_http(
    client: TestClient, keys: dict[Role, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safestream.requests.package import load_signing_key, verify_package

    key_path = tmp_path / "sign.pem"
    load_signing_key(key_path, create=True)
    monkeypatch.setenv("SAFESTREAM_EXPORT_SIGNING_KEY", str(key_path))
    h = auth(keys[Role.LE_LIAISON])
    _preserve(client, keys[Role.LE_LIAISON], png(8))
    rid = client.post("/v1/requests", json=REQUEST, headers=h).json()["id"]
    r = client.post(f"/v1/requests/{rid}/export", json={"reason": "order 17"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    manifest = verify_package(r.content)
    assert any(name.endswith(".bin") for name in manifest["files"])
    assert client.post(f"/v1/requests/{rid}/export", json={}, headers=h).status_code == 422


def test_tamper_missing_and_storage_check_over_http_on_each_backend(
    store: Store, any_evidence: EvidenceStore, clock: Clock, keys: dict[Role, str]
) -> None:
    app = custody_app(store, any_evidence, RequestService(store, clock=clock))
    h = auth(keys[Role.LE_LIAISON])
    with TestClient(app) as c:
        eid = _preserve(c, keys[Role.LE_LIAISON], png(9))
        path = any_evidence.record(eid).path
        ok = c.get("/v1/evidence/storage/check", headers=h).json()
        assert ok["ok"] and ok["rows"] == 1 and ok["backend"] == any_evidence.backend.name
        raw = bytearray(any_evidence.backend.get(path))
        raw[-1] ^= 0xFF
        any_evidence.backend.put_atomic(path, bytes(raw))
        view = {"reason": "look", "original": "true"}
        r = c.get(f"/v1/evidence/{eid}/content", params=view, headers=h)
        assert r.status_code == 409 and r.json()["kind"] == "evidence_integrity"
        any_evidence.backend.delete(path)
        r = c.get(f"/v1/evidence/{eid}/content", params=view, headers=h)
        assert r.status_code == 409 and "missing from" in r.json()["detail"]
        bad = c.get("/v1/evidence/storage/check", headers=h).json()
        assert not bad["ok"] and bad["missing"] == [eid]


def test_unreachable_storage_is_503(
    store: Store, ring: Any, clock: Clock, keys: dict[Role, str]
) -> None:
    import boto3
    from botocore.config import Config

    from safestream.evidence.backends import S3Backend

    client: Any = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    down = EvidenceStore(store, S3Backend("b", client=client), ring, clock=clock)
    with TestClient(custody_app(store, down, RequestService(store, clock=clock))) as c:
        r = c.post(
            "/v1/evidence",
            files={"file": ("x.png", png(1), "image/png")},
            data={"basis": "report", "legal_basis": "report 1"},
            headers=auth(keys[Role.LE_LIAISON]),
        )
        assert r.status_code == 503 and r.json()["kind"] == "evidence_storage"
        check = c.get("/v1/evidence/storage/check", headers=auth(keys[Role.LE_LIAISON]))
        assert check.status_code == 503
    assert down.list_objects() == []
