"""The case and report routes: roles, workflow over HTTP, exports, bad payloads."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cases_support import REPORTER_JSON as REPORTER
from cases_support import hashes, record_check
from safestream.auth import Role
from safestream.store.audit import AuditRepository
from safestream.store.db import Store


def _ops(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    spec = client.get("/openapi.json").json()
    return [
        (m.upper(), p, op)
        for p, item in spec["paths"].items()
        for m, op in item.items()
        if p.startswith(("/v1/cases", "/v1/reports"))
    ]


def test_every_case_route_with_every_role(
    client: TestClient, keys: dict[Role, dict[str, str]]
) -> None:
    ops = _ops(client)
    assert len(ops) == 12
    for method, path, op in ops:
        allowed = set(op["x-roles"])
        assert "admin" in allowed
        url = path.replace("{case_id}", "999999").replace("{report_id}", "999999")
        assert client.request(method, url).status_code == 401
        for role, headers in keys.items():
            r = client.request(method, url, headers=headers)
            if role.value in allowed:
                assert r.status_code not in (401, 403) and r.status_code < 500, (path, role)
            else:
                assert r.status_code == 403, (path, role)


def test_review_and_report_over_http(
    client: TestClient, store: Store, keys: dict[Role, dict[str, str]]
) -> None:
    reviewer, liaison = keys[Role.REVIEWER], keys[Role.LE_LIAISON]
    record_check(store, seed=1, port=None)
    record_check(store, seed=2, account="acct-2", surface="live")
    assert client.post("/v1/cases/sync", headers=reviewer).json() == {"added": 2}
    listed = client.get("/v1/cases", headers=reviewer).json()["cases"]
    assert [c["account_id"] for c in listed] == ["acct-2", "acct-1"]
    assert listed[0]["priority"] > listed[1]["priority"] and listed[0]["priority_reasons"]
    case_id = listed[1]["id"]
    one = client.get(f"/v1/cases/{case_id}", headers=liaison).json()
    assert one["events"][0]["record"]["hashes"]["sha256"] == hashes(1)["sha256"]

    url = f"/v1/cases/{case_id}/decision"
    bad = client.post(
        url,
        json={"status": "confirmed", "reason_code": "known_material_confirmed"},
        headers=reviewer,
    )
    assert bad.status_code == 409
    assert (
        client.post(
            url, json={"status": "in_review", "reason_code": "nope"}, headers=reviewer
        ).status_code
        == 400
    )
    assert (
        client.post(
            url, json={"status": "reported", "reason_code": "x"}, headers=reviewer
        ).status_code
        == 422
    )
    assert (
        client.post(
            url, json={"status": "in_review", "reason_code": "assigned"}, headers=reviewer
        ).status_code
        == 200
    )
    # a report before confirmation is refused
    early = client.post(f"/v1/cases/{case_id}/report", json={"reporter": REPORTER}, headers=liaison)
    assert early.status_code == 409
    ok = client.post(
        url,
        json={"status": "confirmed", "reason_code": "known_material_confirmed", "note": "seen"},
        headers=reviewer,
    )
    assert ok.status_code == 200 and ok.json()["status"] == "confirmed"

    built = client.post(
        f"/v1/cases/{case_id}/report",
        json={"reporter": REPORTER, "files_viewed_by_esp": True, "platform": "Example"},
        headers=liaison,
    )
    assert built.status_code == 201, built.text
    body = built.json()
    assert body["blocking"] == 0
    assert "ip_without_source_port" in {f["code"] for f in body["findings"]}
    rid = body["id"]
    assert client.get(f"/v1/reports/{rid}", headers=liaison).json()["case_id"] == case_id
    xml = client.get(
        f"/v1/reports/{rid}/export", params={"format": "cybertipline"}, headers=liaison
    )
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(xml.text)
    assert root.findtext("report/personOrUserReported/espIdentifier") == "acct-1"
    as_json = client.get(f"/v1/reports/{rid}/export", headers=liaison)
    assert as_json.json()["persons"][0]["ip_capture_events"][0]["port"] is None
    assert (
        client.get(
            f"/v1/reports/{rid}/export", params={"format": "pdf"}, headers=liaison
        ).status_code
        == 422
    )
    done = client.post(f"/v1/reports/{rid}/submitted", json={"reference": "TIP-1"}, headers=liaison)
    assert done.status_code == 200 and done.json()["status"] == "reported"
    actions = [e.action for e in AuditRepository(store).list_events(object_id=str(case_id))]
    assert "case.in_review" in actions and "case.confirmed" in actions
    assert "case.reported" in actions


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"status": "confirmed"},
        {"status": "dismissed", "reason_code": ""},
        {"status": "dismissed", "reason_code": "x" * 65},
        {"status": 5, "reason_code": "false_positive"},
        {"status": "dismissed", "reason_code": "false_positive", "note": "x" * 5001},
    ],
)
def test_bad_decision_payloads(
    client: TestClient, keys: dict[Role, dict[str, str]], payload: dict[str, Any]
) -> None:
    r = client.post("/v1/cases/1/decision", json=payload, headers=keys[Role.REVIEWER])
    assert 400 <= r.status_code < 500


def test_bad_report_payloads(
    client: TestClient, store: Store, keys: dict[Role, dict[str, str]]
) -> None:
    liaison = keys[Role.LE_LIAISON]
    bad_reporter = {"reporter": {"organisation": "", "contact": {"name": "A"}}}
    assert client.post("/v1/cases/1/report", json=bad_reporter, headers=liaison).status_code == 422
    assert (
        client.post(
            "/v1/cases/1/report", json={"reporter": REPORTER, "incident_type": "x"}, headers=liaison
        ).status_code
        == 422
    )
    # no reporter in the body and none configured: a clear 400
    record_check(store, seed=1)
    r = client.post("/v1/cases/999999/report", json={}, headers=liaison)
    assert r.status_code in (400, 404)
    assert (
        client.post("/v1/reports/1/submitted", json={"reference": ""}, headers=liaison).status_code
        == 422
    )
