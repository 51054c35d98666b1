"""CyberTipline-style XML export of a report.

The element names and their order are *modelled* on NCMEC's public
CyberTipline Reporting API documentation as best we know it; they have not
been validated against NCMEC's XSD (which may not be redistributed, so it is
not in this repository). Validate the output against the XSD that NCMEC's API
serves before any submission.

Text is escaped by ElementTree, and characters XML 1.0 cannot carry (most
control characters) are replaced, so a chat excerpt can never inject markup
or make the document ill-formed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from safestream.errors import InputError
from safestream.reports.model import (
    Contact,
    ContactPoint,
    IpCaptureEvent,
    LiveStreamIncident,
    Report,
    ReportedPerson,
    ReportFile,
)

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _clean(value: str) -> str:
    return _INVALID_XML.sub("\ufffd", value)


def _sub(parent: ET.Element, tag: str, value: Any = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if value is not None:
        if isinstance(value, bool):
            el.text = "true" if value else "false"
        elif isinstance(value, datetime):
            el.text = value.isoformat()
        else:
            el.text = _clean(str(value))
    return el


def _person(parent: ET.Element, tag: str, contact: Contact) -> None:
    el = _sub(parent, tag)
    first, _, last = contact.name.rpartition(" ")
    _sub(el, "firstName", first or last)
    if first:
        _sub(el, "lastName", last)
    if contact.email:
        _sub(el, "email", contact.email)
    if contact.phone:
        _sub(el, "phone", contact.phone)


def _ip_event(parent: ET.Element, ev: IpCaptureEvent) -> None:
    el = _sub(parent, "ipCaptureEvent")
    _sub(el, "ipAddress", ev.ip_address)
    _sub(el, "eventName", ev.event_name)
    if ev.date_time is not None:
        _sub(el, "dateTime", ev.date_time)
    if ev.possible_proxy is not None:
        _sub(el, "possibleProxy", ev.possible_proxy)
    if ev.port is not None:
        _sub(el, "port", ev.port)


def _contact_point(parent: ET.Element, tag: str, point: ContactPoint) -> None:
    attrs = {} if point.verified is None else {"verified": "true" if point.verified else "false"}
    _sub(parent, tag, point.value, **attrs)


def _reported_person(el: ET.Element, person: ReportedPerson) -> None:
    if person.esp_identifier:
        _sub(el, "espIdentifier", person.esp_identifier)
    if person.screen_name:
        _sub(el, "screenName", person.screen_name)
    if person.display_name:
        _sub(el, "displayName", person.display_name)
    for url in person.profile_urls:
        _sub(el, "profileUrl", url)
    for email in person.emails:
        _contact_point(el, "email", email)
    for phone in person.phones:
        _contact_point(el, "phone", phone)
    for ev in person.ip_capture_events:
        _ip_event(el, ev)
    for device in person.device_ids:
        dev = _sub(el, "deviceId")
        _sub(dev, "idType", device.id_type)
        _sub(dev, "idValue", device.value)
    disabled = person.account_disabled
    if disabled is not None:
        tag = "accountPermanentlyDisabled" if disabled.permanent else "accountTemporarilyDisabled"
        acc = _sub(el, tag)
        _sub(acc, "disabledDate", disabled.disabled_at)
        if disabled.user_notified is not None:
            _sub(acc, "userNotified", disabled.user_notified)
        if disabled.user_notified_at is not None:
            _sub(acc, "userNotifiedDate", disabled.user_notified_at)


def _live_stream(parent: ET.Element, stream: LiveStreamIncident) -> None:
    """A ``<liveStreamIncident>``: last in ``internetDetails``.

    Modelled, not checked against NCMEC's XSD: the element and its children
    are named in the style of ``chatImIncident`` and ``peer2peerIncident``;
    validate against the XSD the API serves before relying on them.
    """
    el = _sub(parent, "liveStreamIncident")
    _sub(el, "streamType", "videoCall" if stream.kind == "video_call" else "liveStream")
    if stream.platform:
        _sub(el, "platform", stream.platform)
    if stream.stream_id:
        _sub(el, "streamId", stream.stream_id)
    if stream.started_at is not None:
        _sub(el, "startDateTime", stream.started_at)
    if stream.ended_at is not None:
        _sub(el, "endDateTime", stream.ended_at)
    if stream.other_viewers_present is not None:
        _sub(el, "otherViewersPresent", stream.other_viewers_present)
    for when in stream.detected_at:
        _sub(el, "detectionDateTime", when)
    for offset in stream.sample_times_s:
        _sub(el, "streamOffsetSeconds", f"{offset:.3f}")
    for viewer in stream.viewers:
        _reported_person(_sub(el, "viewerOrPayer"), viewer)


def report_element(report: Report) -> ET.Element:
    """The ``<report>`` element, children in the schema's order (as modelled)."""
    root = ET.Element("report")
    summary = _sub(root, "incidentSummary")
    inc = report.incident
    _sub(summary, "incidentType", inc.incident_type.value)
    if inc.platform:
        _sub(summary, "platform", inc.platform)
    if inc.escalate_to_high_priority:
        _sub(summary, "escalateToHighPriority", inc.escalation_reason or "")
    if inc.live_streaming:
        annotations = _sub(summary, "reportAnnotations")
        _sub(annotations, "liveStreaming")
    if inc.incident_date_time is not None:
        _sub(summary, "incidentDateTime", inc.incident_date_time)
    if (
        report.web_page_url
        or report.chat is not None
        or report.peer_to_peer is not None
        or report.live_streams
    ):
        internet = _sub(root, "internetDetails")
        if report.web_page_url:
            _sub(_sub(internet, "webPageIncident"), "url", report.web_page_url)
        if report.chat is not None:
            chat = _sub(internet, "chatImIncident")
            if report.chat.chat_client:
                _sub(chat, "chatClient", report.chat.chat_client)
            if report.chat.excerpt:
                _sub(chat, "content", report.chat.excerpt)
        if report.peer_to_peer is not None:
            p2p = _sub(internet, "peer2peerIncident")
            if report.peer_to_peer.client:
                _sub(p2p, "client", report.peer_to_peer.client)
            for ev in report.peer_to_peer.ip_capture_events:
                _ip_event(p2p, ev)
            for name in report.peer_to_peer.file_names:
                _sub(p2p, "fileName", name)
        for stream in report.live_streams:
            _live_stream(internet, stream)
    reporter = _sub(root, "reporter")
    _person(reporter, "reportingPerson", report.reporter.contact)
    if report.reporter.emergency_contact is not None:
        _person(reporter, "contactPerson", report.reporter.emergency_contact)
    for tag, people in (
        ("personOrUserReported", report.persons),
        ("intendedRecipient", report.intended_recipients),
        ("victim", report.victims),
    ):
        for person in people:
            _reported_person(_sub(root, tag), person)
    info = [report.additional_info or ""]
    if inc.how_detected:
        info.append(f"Detected by: {inc.how_detected}")
    text = "\n".join(i for i in info if i)
    if text:
        _sub(root, "additionalInfo", text)
    return root


def file_details_element(f: ReportFile, *, report_id: str = "", file_id: str = "") -> ET.Element:
    """One ``<fileDetails>`` document (sent per file after the report, as modelled)."""
    root = ET.Element("fileDetails")
    _sub(root, "reportId", report_id)
    _sub(root, "fileId", file_id)
    if f.original_file_name:
        _sub(root, "originalFileName", f.original_file_name)
    if f.viewed_by_esp is not None:
        _sub(root, "fileViewedByEsp", f.viewed_by_esp)
    if f.publicly_available is not None:
        _sub(root, "publiclyAvailable", f.publicly_available)
    if f.live_streaming or f.generative_ai:
        annotations = _sub(root, "fileAnnotations")
        if f.live_streaming:
            _sub(annotations, "liveStreaming")
        if f.generative_ai:
            _sub(annotations, "generativeAi")
    for hash_type, value in (
        ("MD5", f.md5),
        ("SHA1", f.sha1),
        ("SHA256", f.sha256),
        ("PDQ", f.pdq),
    ):
        if value:
            _sub(root, "originalFileHash", value, hashType=hash_type)
    if f.upload_ip_event is not None:
        _ip_event(root, f.upload_ip_event)
    return root


def _text(el: ET.Element) -> str:
    return ET.tostring(el, encoding="unicode", xml_declaration=False)


def report_xml(report: Report) -> str:
    """The report as an XML document (UTF-8 declaration included)."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + _text(report_element(report))


def export_xml(report: Report, *, report_id: str = "") -> str:
    """The report and its files' details in one wrapper document, for review and archiving.

    Submission sends ``<report>`` and each ``<fileDetails>`` separately; this
    bundle keeps them together for a person (or a test) to read.
    """
    bundle = ET.Element("cybertiplineExport", {"modelled": "true", "validated": "false"})
    bundle.append(report_element(report))
    for i, f in enumerate(report.files):
        bundle.append(file_details_element(f, report_id=report_id, file_id=str(i + 1)))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + _text(bundle)


def parse_key_fields(document: str) -> dict[str, Any]:
    """Read back the fields an investigator looks at first (tests and spot checks).

    Accepts a ``<report>`` or a ``<cybertiplineExport>`` document.
    """
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise InputError(f"not well-formed XML: {exc}") from None
    report = root if root.tag == "report" else root.find("report")
    if report is None:
        raise InputError(f"no <report> element (root is <{root.tag}>)")
    persons = []
    for p in report.findall("personOrUserReported"):
        persons.append(
            {
                "esp_identifier": p.findtext("espIdentifier"),
                "screen_name": p.findtext("screenName"),
                "profile_urls": [u.text for u in p.findall("profileUrl")],
                "ip_capture_events": [
                    {
                        "ip_address": e.findtext("ipAddress"),
                        "port": int(port) if (port := e.findtext("port")) else None,
                        "event_name": e.findtext("eventName"),
                        "date_time": e.findtext("dateTime"),
                    }
                    for e in p.findall("ipCaptureEvent")
                ],
            }
        )
    files = [
        {h.get("hashType"): h.text for h in fd.findall("originalFileHash")}
        for fd in root.findall("fileDetails")
    ]
    return {
        "incident_type": report.findtext("incidentSummary/incidentType"),
        "incident_date_time": report.findtext("incidentSummary/incidentDateTime"),
        "chat": report.findtext("internetDetails/chatImIncident/content"),
        "live_streams": [
            {
                "stream_id": ls.findtext("streamId"),
                "start": ls.findtext("startDateTime"),
                "detections": [d.text for d in ls.findall("detectionDateTime")],
            }
            for ls in report.findall("internetDetails/liveStreamIncident")
        ],
        "persons": persons,
        "files": files,
    }


__all__ = [
    "export_xml",
    "file_details_element",
    "parse_key_fields",
    "report_element",
    "report_xml",
]
