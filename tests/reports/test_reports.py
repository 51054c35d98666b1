"""Reports: built from a confirmed case, quality findings, JSON and XML exports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from cases_support import REPORTER, T0, hashes, record_check
from safestream.cases.model import CaseConfig
from safestream.cases.service import CaseService
from safestream.errors import ConflictError, InputError
from safestream.reports.build import BuildOptions, build_report
from safestream.reports.cybertipline import export_xml, parse_key_fields, report_xml
from safestream.reports.model import Report
from safestream.reports.quality import blocking, check_report
from safestream.reports.service import ReportService, load_report
from safestream.store.audit import AuditRepository
from safestream.store.db import Store


def confirmed_case(store: Store) -> tuple[CaseService, int]:
    svc = CaseService(store, CaseConfig(), clock=lambda: T0 + timedelta(minutes=5))
    svc.sync()
    (case,) = svc.repo.list()
    svc.decide(case.id, "in_review", reason_code="assigned", actor="r")
    svc.decide(case.id, "confirmed", reason_code="known_material_confirmed", actor="r")
    return svc, case.id


def codes(report: Report) -> set[str]:
    return {f.code for f in check_report(report)}


def test_report_from_case_has_what_investigators_need(store: Store) -> None:
    record_check(store, seed=1, at=T0, port=51234)
    record_check(store, seed=1, at=T0 + timedelta(minutes=1), ip="2001:db8::5", port=None)
    record_check(store, seed=2, at=T0 + timedelta(minutes=2), ip="203.0.113.9", port=40000)
    svc, case_id = confirmed_case(store)
    report = build_report(
        svc.get(case_id), BuildOptions(reporter=REPORTER, files_viewed_by_esp=True)
    )
    assert report.incident.incident_date_time == T0
    (person,) = report.persons
    assert person.esp_identifier == "acct-1" and person.screen_name == "user-acct-1"
    assert person.profile_urls == ["https://example.com/u/acct-1"]
    assert [(e.ip_address, e.port) for e in person.ip_capture_events] == [
        ("203.0.113.7", 51234),
        ("2001:db8::5", None),
        ("203.0.113.9", 40000),
    ]
    assert all(
        e.date_time is not None and e.date_time.utcoffset() == timedelta(0)
        for e in person.ip_capture_events
    )
    assert len(report.files) == 2  # deduplicated by SHA-256
    first = report.files[0]
    h = hashes(1)
    assert (first.md5, first.sha1, first.sha256, first.pdq) == (
        h["md5"],
        h["sha1"],
        h["sha256"],
        h["pdq"],
    )
    assert first.detected_by == ["bank:known"]
    findings = check_report(report)
    ports = [f for f in findings if f.code == "ip_without_source_port"]
    assert [f.path for f in ports] == ["persons[0].ip_capture_events[1].port"]
    assert "2001:db8::5" in ports[0].message
    assert not blocking(findings)


def test_only_confirmed_cases_are_reported(store: Store) -> None:
    record_check(store, seed=1)
    svc = CaseService(store)
    svc.sync()
    (case,) = svc.repo.list()
    with pytest.raises(ConflictError, match="confirmed"):
        ReportService(svc).build(case.id, BuildOptions(reporter=REPORTER), actor="le")


def test_completeness_findings() -> None:
    bare = Report.model_validate(
        {
            "reporter": {"organisation": "Example", "contact": {"name": "A"}},
            "incident": {},
            "chat": {"excerpt": "  "},
            "persons": [{"ip_capture_events": [{"ip_address": "203.0.113.1"}]}],
            "files": [{"upload_ip_event": {"ip_address": "203.0.113.1"}}],
        }
    )
    found = codes(bare)
    assert {
        "reporter_no_email",
        "reporter_no_emergency_contact",
        "no_incident_time",
        "chat_without_conversation",
        "person_no_identifier",
        "person_no_profile_url",
        "ip_without_source_port",
        "ip_without_time",
        "file_no_hash",
        "file_not_viewed",
    } <= found
    assert codes(bare.model_copy(update={"persons": []})) >= {"no_reported_person"}


def test_naive_times_and_bad_ports_are_refused() -> None:
    base = {"reporter": {"organisation": "E", "contact": {"name": "A"}}}
    with pytest.raises(InputError):
        load_report({**base, "incident": {"incident_date_time": "2026-03-01T09:00:00"}})
    with pytest.raises(InputError):
        load_report(
            {
                **base,
                "incident": {},
                "persons": [{"ip_capture_events": [{"ip_address": "203.0.113.1", "port": 70000}]}],
            }
        )
    with pytest.raises(InputError):
        load_report({**base, "incident": {}, "unknown_field": 1})


def test_xml_is_well_formed_escaped_and_round_trips(store: Store) -> None:
    record_check(store, seed=1, surface="chat")
    record_check(store, seed=2, surface="chat", at=T0 + timedelta(seconds=30))
    svc, case_id = confirmed_case(store)
    excerpt = '</content><injected/> & "quotes" \x00\x07 — ünïcødé 🙂 ' + "x" * 20_000
    stored = ReportService(svc).build(
        case_id,
        BuildOptions(reporter=REPORTER, chat_excerpt=excerpt, files_viewed_by_esp=False),
        actor="le",
    )
    doc = ReportService(svc).export(stored.id, "cybertipline")
    root = ET.fromstring(doc)  # well-formed
    assert root.find("report/injected") is None
    assert root.find("report/internetDetails/chatImIncident/injected") is None
    order = [child.tag for child in root.find("report")]  # type: ignore[union-attr]
    assert order == [
        "incidentSummary",
        "internetDetails",
        "reporter",
        "personOrUserReported",
        "additionalInfo",
    ]
    key = parse_key_fields(doc)
    assert key["incident_date_time"] == T0.isoformat()
    assert key["chat"].startswith('</content><injected/> & "quotes" \ufffd\ufffd')
    (person,) = key["persons"]
    assert person["esp_identifier"] == "acct-1"
    assert person["profile_urls"] == ["https://example.com/u/acct-1"]
    assert person["ip_capture_events"][0] == {
        "ip_address": "203.0.113.7",
        "port": 51234,
        "event_name": "Upload",
        "date_time": T0.isoformat(),
    }
    assert key["files"][0] == {
        "MD5": hashes(1)["md5"],
        "SHA1": hashes(1)["sha1"],
        "SHA256": hashes(1)["sha256"],
        "PDQ": hashes(1)["pdq"],
    }
    details = root.findall("fileDetails")
    assert [d.findtext("fileViewedByEsp") for d in details] == ["false", "false"]
    assert ET.fromstring(report_xml(stored.report)).tag == "report"


def test_json_export_round_trips(store: Store) -> None:
    record_check(store, seed=1, surface="live")
    svc, case_id = confirmed_case(store)
    rs = ReportService(svc)
    stored = rs.build(case_id, BuildOptions(reporter=REPORTER), actor="le")
    again = load_report(json.loads(rs.export(stored.id, "json")))
    assert again == stored.report
    assert again.incident.escalate_to_high_priority and again.files[0].live_streaming
    bundle = ET.fromstring(export_xml(again))
    # liveStreaming is a file annotation in NCMEC's schema, never a report annotation
    assert bundle.find("report/incidentSummary/reportAnnotations") is None
    assert bundle.find("fileDetails/fileAnnotations/liveStreaming") is not None
    assert bundle.findtext("report/incidentSummary/escalateToHighPriority")
    with pytest.raises(InputError):
        rs.export(stored.id, "pdf")


def test_submission_gate_and_override_are_audited(store: Store) -> None:
    record_check(store, seed=1, surface="chat")
    svc, case_id = confirmed_case(store)
    rs = ReportService(svc)
    stored = rs.build(case_id, BuildOptions(reporter=REPORTER), actor="le")
    assert "chat_without_conversation" in {f.code for f in blocking(stored.findings)}
    with pytest.raises(ConflictError, match="chat_without_conversation"):
        rs.mark_submitted(stored.id, actor="le", reference="TIP-1")
    out = rs.mark_submitted(
        stored.id, actor="le", reference="TIP-1", override_reason="conversation deleted by user"
    )
    assert out["status"] == "reported" and out["reported_at"]
    with pytest.raises(ConflictError):
        rs.mark_submitted(stored.id, actor="le", reference="TIP-1", override_reason="again")
    actions = [e.action for e in AuditRepository(store).list_events()]
    assert actions.count("report.build") == 1 and actions.count("case.reported") == 1
    (event,) = AuditRepository(store).list_events(action="case.reported")
    assert event.reason == "conversation deleted by user"
    assert event.detail["overridden"] == ["chat_without_conversation"]
