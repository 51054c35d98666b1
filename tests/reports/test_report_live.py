"""Livestream / video-call incident details: model, build from live cases, XML, quality."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]

from cases_support import T0, record_check, record_live
from cybertip_support import TEST_XSD
from safestream.cases.model import CaseConfig
from safestream.cases.service import CaseService
from safestream.errors import InputError
from safestream.reports.build import BuildOptions, build_report
from safestream.reports.cybertipline import parse_key_fields, report_element, report_xml
from safestream.reports.example import example_report
from safestream.reports.model import Contact, LiveStreamIncident, Report, Reporter
from safestream.reports.quality import check_report
from safestream.reports.service import load_report
from safestream.store.db import Store

REPORTER = Reporter(
    organisation="Example Platform",
    contact=Contact(name="Ada Example", email="trust@example.com"),
    emergency_contact=Contact(name="On Call", phone="+1 555 0199"),
)


def confirmed(store: Store) -> CaseService:
    svc = CaseService(store, CaseConfig(), clock=lambda: T0 + timedelta(minutes=5))
    svc.sync()
    for case in svc.repo.list():
        svc.decide(case.id, "in_review", reason_code="assigned", actor="r")
        svc.decide(case.id, "confirmed", reason_code="known_material_confirmed", actor="r")
    return svc


def codes(report: Report) -> set[str]:
    return {f.code for f in check_report(report)}


def valid(document: str) -> list[str]:
    schema = etree.XMLSchema(etree.fromstring(TEST_XSD.encode()))
    ok = schema.validate(etree.fromstring(document.encode()))
    return [] if ok else [str(e) for e in schema.error_log]


def test_live_case_report_carries_the_stream(store: Store) -> None:
    record_live(store, stream_id="cam-1", sample_times_s=(12.0, 13.5))
    record_live(store, stream_id="cam-1", sample_times_s=(40.25,), at=T0 + timedelta(seconds=42))
    record_live(
        store,
        stream_id="call-7",
        started=T0 + timedelta(minutes=1),
        sample_times_s=(3.0,),
        at=T0 + timedelta(minutes=1, seconds=4),
    )
    svc = confirmed(store)
    (case,) = svc.repo.list()
    report = build_report(case, BuildOptions(reporter=REPORTER, platform="ExampleLive"))
    assert report.incident.live_streaming and report.incident.escalate_to_high_priority
    by_id = {s.stream_id: s for s in report.live_streams}
    assert set(by_id) == {"cam-1", "call-7"}
    cam = by_id["cam-1"]
    assert cam.started_at == T0 and cam.platform == "ExampleLive"
    assert cam.sample_times_s == [12.0, 13.5, 40.25]
    assert cam.detected_at == [T0 + timedelta(seconds=15), T0 + timedelta(seconds=42)]
    assert by_id["call-7"].started_at == T0 + timedelta(minutes=1)
    assert "live_without_stream_details" not in codes(report)
    assert "live_stream_no_start" not in codes(report)

    document = report_xml(report)
    assert valid(document) == []
    root = ET.fromstring(document)
    # NCMEC's schema has no livestream element: one chatImIncident per stream, its
    # additionalInfo describing it; each internetDetails holds exactly one incident.
    details = root.findall("internetDetails")
    assert [[c.tag for c in d] for d in details] == [["chatImIncident"], ["chatImIncident"]]
    streams = [d[0] for d in details]
    assert [s.findtext("chatRoomName") for s in streams] == ["cam-1", "call-7"]
    assert [s.findtext("chatClient") for s in streams] == ["ExampleLive", "ExampleLive"]
    info = streams[0].findtext("additionalInfo") or ""
    assert info.startswith("Livestream cam-1 on ExampleLive")
    assert f"started {T0.isoformat()}" in info
    assert "triggering frames at 12.000, 13.500, 40.250 s into the stream" in info
    assert (T0 + timedelta(seconds=42)).isoformat() in info
    assert root.findtext("incidentSummary/incidentDateTimeDescription")
    assert root.find("incidentSummary/reportAnnotations") is None  # no liveStreaming there
    fields = parse_key_fields(document)
    assert [s["stream_id"] for s in fields["live_streams"]] == ["cam-1", "call-7"]
    assert "40.250" in fields["live_streams"][0]["description"]


def test_upload_case_has_no_stream(store: Store) -> None:
    record_check(store, seed=1)
    svc = confirmed(store)
    (case,) = svc.repo.list()
    report = build_report(case, BuildOptions(reporter=REPORTER))
    assert report.live_streams == []
    assert ET.fromstring(report_xml(report)).find("internetDetails") is None
    assert "live_without_stream_details" not in codes(report)


def test_live_report_without_details_is_flagged() -> None:
    body = example_report().model_dump(mode="json")
    body["incident"]["live_streaming"] = True
    body["live_streams"] = []
    report = load_report(body)
    assert "live_without_stream_details" in codes(report)
    body["live_streams"] = [{"kind": "video_call", "platform": "ExampleCall"}]
    report = load_report(body)
    found = codes(report)
    assert "live_without_stream_details" not in found
    assert {"live_stream_no_start", "live_stream_no_id"} <= found


def test_full_stream_element_in_schema_order() -> None:
    stream = LiveStreamIncident(
        kind="video_call",
        platform="ExampleCall",
        stream_id="call-<1>&",
        started_at=T0,
        ended_at=T0 + timedelta(minutes=30),
        other_viewers_present=True,
        viewers=[{"esp_identifier": "payer-1", "screen_name": "payer"}],  # type: ignore[list-item]
        detected_at=[T0 + timedelta(minutes=3)],
        sample_times_s=[180.0],
    )
    body = example_report().model_dump(mode="json")
    body["live_streams"] = [stream.model_dump(mode="json")]
    report = load_report(body)
    document = report_xml(report)
    assert valid(document) == []
    root = report_element(report)
    (details,) = root.findall("internetDetails")[-1:]
    el = details.find("chatImIncident")
    assert el is not None
    assert [c.tag for c in el] == ["chatClient", "chatRoomName", "additionalInfo"]
    assert el.findtext("chatRoomName") == "call-<1>&"  # escaped, never markup
    info = el.findtext("additionalInfo") or ""
    assert info.startswith("Video call call-<1>& on ExampleCall")
    assert f"ended {(T0 + timedelta(minutes=30)).isoformat()}" in info
    assert "other viewers present" in info and "180.000" in info
    # the viewer or payer is an intended recipient of the stream, structured
    (viewer,) = root.findall("intendedRecipient")
    assert viewer.findtext("espIdentifier") == "payer-1"
    assert viewer.findtext("screenName") == "payer"
    assert "call-<1>&" in (viewer.findtext("additionalInfo") or "")
    # with the stream's page known, a webPageIncident carries it
    body["live_streams"][0]["url"] = "https://live.example/watch/1"
    with_url = report_element(load_report(body)).findall("internetDetails")[-1]
    assert with_url.findtext("webPageIncident/url") == "https://live.example/watch/1"
    assert valid(report_xml(load_report(body))) == []
    # the JSON round trip keeps it
    again = Report.model_validate(json.loads(report.model_dump_json()))
    assert again.live_streams == report.live_streams


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"started_at": "2026-03-01T09:00:00"}, "started_at"),  # naive
        ({"started_at": T0.isoformat(), "ended_at": "2026-03-01T08:00:00+00:00"}, "ended_at"),
        ({"sample_times_s": [-1.0]}, "sample_times_s"),
        ({"sample_times_s": ["nan"]}, "sample_times_s"),
        ({"kind": "radio"}, "kind"),
        ({"stream_id": "x" * 301}, "stream_id"),
        ({"viewers_present": True}, "viewers_present"),
    ],
)
def test_bad_stream_details_are_refused(change: dict[str, Any], field: str) -> None:
    body = example_report().model_dump(mode="json")
    body["live_streams"] = [{"stream_id": "cam-1"} | change]
    with pytest.raises(InputError) as err:
        load_report(body)
    assert field in str(err.value)


def test_stream_times_are_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        LiveStreamIncident(started_at=datetime(2026, 3, 1, 9, 0))
