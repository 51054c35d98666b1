"""The report XML follows NCMEC's documented structure; the submission handles its codes.

The structure (element names, nesting, order, cardinality, enumerations) and the
response codes were cross-checked against public clients of the CyberTipline
Reporting API (one generated from the XSD NCMEC serves). ``TEST_XSD`` encodes them;
the fake hotline answers with NCMEC's documented codes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]

from cases_support import confirmed_report
from cybertip_support import PASSWORD, TEST_XSD, USER, running
from safestream.reports.cybertipline import MAX_FILES_LISTED, report_xml
from safestream.reports.example import example_report
from safestream.reports.model import (
    ContactPoint,
    IpCaptureEvent,
    LiveStreamIncident,
    ReportedPerson,
    ReportFile,
)
from safestream.reports.quality import check_report
from safestream.reports.service import ReportService
from safestream.reports.submission import (
    CybertipAuthError,
    CybertipClient,
    CybertipConfig,
    CybertipUnavailable,
    FileSource,
    SubmissionService,
)
from safestream.store.cases import SubmissionRepository
from safestream.store.db import Store

T = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
SCHEMA = etree.XMLSchema(etree.fromstring(TEST_XSD.encode()))


def errors(document: str) -> list[str]:
    SCHEMA.validate(etree.fromstring(document.encode()))
    return [str(e) for e in SCHEMA.error_log]


def codes(report: Any) -> dict[str, str]:
    return {f.code: f.severity for f in check_report(report)}


def test_everything_we_model_fits_the_structure() -> None:
    base = example_report()
    viewer = ReportedPerson(
        esp_identifier="payer-9", phones=[ContactPoint(value="+1 555 0199", verified=True)]
    )
    report = base.model_copy(
        update={
            "web_page_url": "https://example.com/post/1",
            "live_streams": [
                LiveStreamIncident(stream_id="cam-1", started_at=T, viewers=[viewer]),
                LiveStreamIncident(kind="video_call", url="https://example.com/call/7"),
            ],
            "persons": [
                *base.persons,
                ReportedPerson(
                    esp_identifier="acct-2",
                    ip_capture_events=[
                        IpCaptureEvent(ip_address="198.51.100.7", port=40001, date_time=T)
                    ],
                ),
            ],
            "victims": [ReportedPerson(screen_name="v")],
        }
    )
    document = report_xml(report)
    assert errors(document) == []
    root = ET.fromstring(document)
    # one reported person structured; the second described with its IP, port and time
    assert len(root.findall("personOrUserReported")) == 1
    info = root.findtext("additionalInfo") or ""
    assert "account acct-2" in info and "IP 198.51.100.7 port 40001 (Upload)" in info
    assert T.isoformat() in info
    # the stream's payer is an intended recipient, phone in the person block
    (recipient,) = root.findall("intendedRecipient")
    assert recipient.findtext("intendedRecipientPerson/phone") == "+1 555 0199"
    assert [[c.tag for c in d] for d in root.findall("internetDetails")] == [
        ["webPageIncident"],
        ["chatImIncident"],  # the example's chat
        ["chatImIncident"],  # stream cam-1 (no URL)
        ["webPageIncident"],  # call 7, at its URL
    ]
    assert codes(report)["several_reported_persons"] == "warning"
    # the reporter's organisation reaches the report
    organisation = base.reporter.organisation
    assert root.findtext("reporter/companyTemplate") == f"Reported by {organisation}."


def test_escalation_needs_a_reason_and_is_cut_to_3000() -> None:
    base = example_report()
    blank = base.model_copy(
        update={
            "incident": base.incident.model_copy(
                update={"escalate_to_high_priority": True, "escalation_reason": "  "}
            )
        }
    )
    assert ET.fromstring(report_xml(blank)).find("incidentSummary/escalateToHighPriority") is None
    assert codes(blank)["escalation_without_reason"] == "blocking"
    long = base.model_copy(
        update={
            "incident": base.incident.model_copy(
                update={"escalate_to_high_priority": True, "escalation_reason": "x" * 4000}
            )
        }
    )
    text = ET.fromstring(report_xml(long)).findtext("incidentSummary/escalateToHighPriority")
    assert text == "x" * 3000
    assert codes(long)["escalation_reason_too_long"] == "warning"
    assert errors(report_xml(long)) == []


def test_event_names_outside_ncmecs_list_block() -> None:
    base = example_report()
    person = base.persons[0].model_copy(
        update={"ip_capture_events": [IpCaptureEvent(ip_address="192.0.2.1", event_name="Chat")]}
    )
    report = base.model_copy(update={"persons": [person]})
    assert codes(report)["ip_event_name_unknown"] == "blocking"
    assert errors(report_xml(report))  # the schema refuses it too
    upload = base.files[0].model_copy(
        update={"upload_ip_event": IpCaptureEvent(ip_address="192.0.2.1", event_name="Post")}
    )
    assert "ip_event_name_unknown" in codes(base.model_copy(update={"files": [upload]}))


def test_files_listing_is_bounded_and_incident_details_expected() -> None:
    base = example_report()
    files = [ReportFile(sha256=f"{i:064x}") for i in range(MAX_FILES_LISTED + 5)]
    report = base.model_copy(update={"files": files, "chat": None, "web_page_url": None})
    info = ET.fromstring(report_xml(report)).findtext("additionalInfo") or ""
    assert f"{MAX_FILES_LISTED - 1:064x}" in info and f"{MAX_FILES_LISTED:064x}" not in info
    assert "(+5 more files)" in info
    assert codes(report)["no_incident_details"] == "warning"


# -- submission against NCMEC's documented codes ---------------------------------


def submitter(rs: ReportService, url: str, attempts: int = 2) -> SubmissionService:
    config = CybertipConfig(
        base_url=url, user=USER, password=PASSWORD, timeout_s=10, max_attempts=attempts
    )
    return SubmissionService(
        rs,
        lambda log: CybertipClient(config, on_exchange=log, sleep=lambda _s: None),
        files=lambda *_: FileSource(b"file bytes", "image/png"),
    )


def test_an_expired_unfinished_report_is_submitted_afresh(store: Store) -> None:
    """5001 on resume: the hotline dropped the unfinished report; one new one is filed."""
    rs, rid = confirmed_report(store, 1)
    with running() as fake:
        fake.path_faults["/upload"] = ["503", "503"]
        with pytest.raises(CybertipUnavailable):
            submitter(rs, fake.url).submit(rid, actor="le")
        (first,) = fake.reports
        fake.reports[first].state = "expired"  # more than 24 h / 1 h idle at NCMEC
        out = submitter(rs, fake.url).submit(rid, actor="le")
        assert out["status"] == "finished" and out["remote_report_id"] != first
        assert out["retracted"] == [first]  # no longer alive at the hotline
        assert fake.count("/retract") == 0 and fake.count("/submit") == 2
        assert fake.in_state("finished") == [out["remote_report_id"]]
        assert "5001" in (out["last_error"] or "") or out["last_error"] is None


def test_an_upload_the_hotline_received_damaged_is_repeated(store: Store) -> None:
    """The /upload answer's MD5 differs from ours: not filed with a damaged file."""
    rs, rid = confirmed_report(store, 1)
    with running() as fake:
        fake.corrupt_uploads = 1
        with pytest.raises(CybertipUnavailable, match="MD5"):
            submitter(rs, fake.url).submit(rid, actor="le")
        state = SubmissionRepository(store).get(rid)
        assert state.status == "in_progress" and "0" not in state.steps
        out = submitter(rs, fake.url).submit(rid, actor="le")
        assert out["status"] == "finished" and fake.count("/upload") == 2
        (held,) = fake.reports.values()
        (details,) = [ET.fromstring(d) for d in held.file_details]
        assert details.findtext("fileId") == out["files"]["0"]["file_id"]
        assert held.files[details.findtext("fileId") or ""] == b"file bytes"


def test_auth_response_codes_are_credential_errors(store: Store) -> None:
    """NCMEC's 2000/3xxx codes (even with HTTP 200) say the credentials, not the report."""
    rs, rid = confirmed_report(store, 1)
    with running() as fake:
        original = fake.handle

        def handle(method: str, path: str, body: bytes, ctype: str) -> tuple[int, str]:
            if path == "/submit":
                return 200, (
                    "<reportResponse><responseCode>3100</responseCode>"
                    "<responseDescription>not authorized</responseDescription></reportResponse>"
                )
            return original(method, path, body, ctype)

        fake.handle = handle  # type: ignore[method-assign]
        with pytest.raises(CybertipAuthError, match="3100"):
            submitter(rs, fake.url).submit(rid, actor="le")
