"""CyberTipline XML of a report.

The element names, nesting and order follow NCMEC's CyberTipline Reporting API
schema as several independent public clients of the API have it (one of them
generated from the XSD the API serves, refreshed daily); they have not been
checked against NCMEC's service itself, and NCMEC's XSD is not redistributed
here. Validate the output against the XSD that NCMEC's API serves
(``safestream reports validate --fetch-xsd``) before the first submission.

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


def _phone_email(el: ET.Element, phones: list[str], emails: list[str]) -> None:
    # A person's phones come before their emails.
    for phone in phones:
        _sub(el, "phone", phone)
    for email in emails:
        _sub(el, "email", email)


def _person(parent: ET.Element, tag: str, contact: Contact) -> None:
    el = _sub(parent, tag)
    first, _, last = contact.name.rpartition(" ")
    _sub(el, "firstName", first or last)
    if first:
        _sub(el, "lastName", last)
    _phone_email(
        el, [contact.phone] if contact.phone else [], [contact.email] if contact.email else []
    )


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


def _reported_person(
    el: ET.Element, person_tag: str, person: ReportedPerson, *, always_person: bool = False
) -> None:
    """The children of ``personOrUserReported``, ``intendedRecipient`` or ``victim``.

    Emails and phones belong in the leading person block (``personOrUserReportedPerson``,
    ``intendedRecipientPerson``, ``victimPerson``), phones first; the account fields
    follow in the schema's order.
    """
    if person.phones or person.emails or always_person:
        block = _sub(el, person_tag)
        for phone in person.phones:
            _contact_point(block, "phone", phone)
        for email in person.emails:
            _contact_point(block, "email", email)
    if person.esp_identifier:
        _sub(el, "espIdentifier", person.esp_identifier)
    if person.screen_name:
        _sub(el, "screenName", person.screen_name)
    if person.display_name:
        _sub(el, "displayName", person.display_name)
    for url in person.profile_urls:
        _sub(el, "profileUrl", url)
    for ev in person.ip_capture_events:
        _ip_event(el, ev)
    for device in person.device_ids:
        dev = _sub(el, "deviceId")
        _sub(dev, "idType", device.id_type)
        _sub(dev, "idValue", device.value)
    disabled = person.account_disabled
    if disabled is not None:
        # A boolean with the dates and notification as attributes.
        attrs = {"disabledDate": disabled.disabled_at.isoformat()}
        if disabled.user_notified is not None:
            attrs["userNotified"] = "true" if disabled.user_notified else "false"
        if disabled.user_notified_at is not None:
            attrs["userNotifiedDate"] = disabled.user_notified_at.isoformat()
        tag = "accountPermanentlyDisabled" if disabled.permanent else "accountTemporarilyDisabled"
        _sub(el, tag, True, **attrs)


def _person_text(person: ReportedPerson) -> str:
    """A reported person in words (for additionalInfo), IP events with port and time."""
    parts = [
        f"{label} {value}"
        for label, value in (
            ("account", person.esp_identifier),
            ("screen name", person.screen_name),
            ("display name", person.display_name),
        )
        if value
    ]
    parts += [f"profile {url}" for url in person.profile_urls]
    for ev in person.ip_capture_events:
        port = f" port {ev.port}" if ev.port is not None else ""
        when = f" at {ev.date_time.isoformat()}" if ev.date_time is not None else ""
        parts.append(f"IP {ev.ip_address}{port} ({ev.event_name}){when}")
    parts += [f"email {e.value}" for e in person.emails]
    parts += [f"phone {p.value}" for p in person.phones]
    parts += [f"device {d.id_type} {d.value}" for d in person.device_ids]
    return "; ".join(parts) or "no identifiers"


def _stream_text(stream: LiveStreamIncident) -> str:
    """A livestream or video call in words: NCMEC's schema has no element for one."""
    kind = "Video call" if stream.kind == "video_call" else "Livestream"
    head = f"{kind} {stream.stream_id or '(no id)'}"
    if stream.platform:
        head += f" on {stream.platform}"
    parts = [head]
    if stream.url:
        parts.append(f"at {stream.url}")
    if stream.started_at is not None:
        parts.append(f"started {stream.started_at.isoformat()}")
    if stream.ended_at is not None:
        parts.append(f"ended {stream.ended_at.isoformat()}")
    if stream.other_viewers_present is not None:
        parts.append(
            "other viewers present" if stream.other_viewers_present else "no other viewers"
        )
    text = ", ".join(parts)
    if stream.detected_at:
        text += "; detected at " + ", ".join(t.isoformat() for t in stream.detected_at[:50])
        if len(stream.detected_at) > 50:
            text += f" (+{len(stream.detected_at) - 50} more)"
    if stream.sample_times_s:
        times = ", ".join(f"{t:.3f}" for t in stream.sample_times_s[:50])
        text += f"; triggering frames at {times} s into the stream"
        if len(stream.sample_times_s) > 50:
            text += f" (+{len(stream.sample_times_s) - 50} more)"
    if stream.viewers:
        text += f"; {len(stream.viewers)} viewer(s) or payer(s) listed as intended recipients"
    return text


#: At most this many files are listed (with their hashes) in the report's additionalInfo.
MAX_FILES_LISTED = 200


def _files_text(files: list[ReportFile]) -> str:
    lines = []
    for i, f in enumerate(files[:MAX_FILES_LISTED]):
        hashes = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("SHA-256", f.sha256),
                ("MD5", f.md5),
                ("SHA-1", f.sha1),
                ("PDQ", f.pdq),
            )
            if value
        )
        name = f.original_file_name or f"file {i + 1}"
        lines.append(f"- {name}: {hashes or 'no hash'}")
    if len(files) > MAX_FILES_LISTED:
        lines.append(f"- (+{len(files) - MAX_FILES_LISTED} more files)")
    return "Files of this incident (uploaded files also have their own fileDetails):\n" + "\n".join(
        lines
    )


#: NCMEC caps ``escalateToHighPriority`` at this many characters.
MAX_ESCALATION_CHARS = 3000


def report_element(report: Report) -> ET.Element:
    """The ``<report>`` element, children in the order of NCMEC's schema.

    Structure cross-checked against public clients of the Reporting API (one
    generated from the XSD NCMEC serves), not against NCMEC itself: validate
    against the XSD its API serves (``reports validate --fetch-xsd``) first.
    Livestreams and video calls have no element in the schema: each becomes a
    ``chatImIncident`` (``webPageIncident`` when its URL is known) whose
    ``additionalInfo`` describes it, and its viewers or payers become
    ``intendedRecipient`` records. The schema takes one reported person: the
    first is structured, the others are described in ``additionalInfo``.
    """
    root = ET.Element("report")
    summary = _sub(root, "incidentSummary")
    inc = report.incident
    _sub(summary, "incidentType", inc.incident_type.value)
    if inc.platform:
        _sub(summary, "platform", inc.platform)
    reason = (inc.escalation_reason or "").strip()
    if inc.escalate_to_high_priority and reason:
        # Only a non-blank text escalates.
        _sub(summary, "escalateToHighPriority", reason[:MAX_ESCALATION_CHARS])
    if inc.incident_date_time is not None:
        _sub(summary, "incidentDateTime", inc.incident_date_time)
    if report.live_streams:
        _sub(
            summary,
            "incidentDateTimeDescription",
            "Detected during a livestream or video call (details in internetDetails)",
        )
    # One internetDetails per incident, each holding exactly one incident element.
    if report.web_page_url:
        web = _sub(_sub(root, "internetDetails"), "webPageIncident")
        _sub(web, "url", report.web_page_url)
    if report.chat is not None:
        chat = _sub(_sub(root, "internetDetails"), "chatImIncident")
        if report.chat.chat_client:
            _sub(chat, "chatClient", report.chat.chat_client)
        if report.chat.excerpt:
            _sub(chat, "content", report.chat.excerpt)
    if report.peer_to_peer is not None:
        p2p = _sub(_sub(root, "internetDetails"), "peer2peerIncident")
        if report.peer_to_peer.client:
            _sub(p2p, "client", report.peer_to_peer.client)
        for ev in report.peer_to_peer.ip_capture_events:
            _ip_event(p2p, ev)
        if report.peer_to_peer.file_names:
            _sub(p2p, "fileNames", "\n".join(report.peer_to_peer.file_names))
    for stream in report.live_streams:
        details = _sub(root, "internetDetails")
        if stream.url:
            el = _sub(details, "webPageIncident")
            _sub(el, "url", stream.url)
        else:
            el = _sub(details, "chatImIncident")
            if stream.platform:
                _sub(el, "chatClient", stream.platform)
            if stream.stream_id:
                _sub(el, "chatRoomName", stream.stream_id)
        _sub(el, "additionalInfo", _stream_text(stream))
    reporter = _sub(root, "reporter")
    _person(reporter, "reportingPerson", report.reporter.contact)
    if report.reporter.emergency_contact is not None:
        _person(reporter, "contactPerson", report.reporter.emergency_contact)
    _sub(reporter, "companyTemplate", f"Reported by {report.reporter.organisation}.")
    if report.persons:
        _reported_person(
            _sub(root, "personOrUserReported"), "personOrUserReportedPerson", report.persons[0]
        )
    recipients: list[tuple[ReportedPerson, LiveStreamIncident | None]] = [
        (p, None) for p in report.intended_recipients
    ]
    for stream in report.live_streams:
        recipients += [(v, stream) for v in stream.viewers]
    for person, from_stream in recipients:
        el = _sub(root, "intendedRecipient")
        _reported_person(el, "intendedRecipientPerson", person)
        if from_stream is not None:
            _sub(
                el,
                "additionalInfo",
                f"Watched or paid for livestream/video call {from_stream.stream_id or '(no id)'}",
            )
    for person in report.victims:
        _reported_person(_sub(root, "victim"), "victimPerson", person, always_person=True)
    info = [report.additional_info or ""]
    if inc.how_detected:
        info.append(f"Detected by: {inc.how_detected}")
    if len(report.persons) > 1:
        info.append(
            "Other reported accounts of this incident:\n"
            + "\n".join(f"- {_person_text(p)}" for p in report.persons[1:])
        )
    if report.files:
        info.append(_files_text(report.files))
    text = "\n\n".join(i for i in info if i)
    if text:
        _sub(root, "additionalInfo", text)
    return root


def file_details_element(f: ReportFile, *, report_id: str = "", file_id: str = "") -> ET.Element:
    """One ``<fileDetails>`` document, for a file uploaded with the hotline's ``fileId``."""
    root = ET.Element("fileDetails")
    _sub(root, "reportId", report_id)
    _sub(root, "fileId", file_id)
    if f.original_file_name:
        _sub(root, "originalFileName", f.original_file_name)
    if f.upload_date_time is not None:
        _sub(root, "uploadedToEspTimestamp", f.upload_date_time)
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
            {"stream_id": el.findtext("chatRoomName"), "description": el.findtext("additionalInfo")}
            for el in report.findall("internetDetails/*")
            if (el.findtext("additionalInfo") or "").startswith(("Livestream", "Video call"))
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
