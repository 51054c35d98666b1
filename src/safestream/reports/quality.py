"""The quality gate: what an investigator needs that a report lacks.

Each finding has a stable ``code`` (for dashboards and overrides), a
``severity`` (``blocking``: the report should not go out without a person's
written override; ``warning``: it may, but it is weaker for it) and the
``path`` of the field in the report's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from safestream.reports.cybertipline import MAX_ESCALATION_CHARS
from safestream.reports.model import IP_EVENT_NAMES, Report, ReportedPerson

Severity = Literal["blocking", "warning"]


@dataclass(frozen=True)
class Finding:
    """One missing or weak field."""

    code: str
    severity: Severity
    path: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "code": self.code,
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
        }


def check_report(report: Report) -> list[Finding]:
    """Every missing or weak field that matters to investigators, in report order."""
    out: list[Finding] = []

    def add(code: str, severity: Severity, path: str, message: str) -> None:
        out.append(Finding(code, severity, path, message))

    if report.reporter.contact.email is None:
        add("reporter_no_email", "blocking", "reporter.contact.email", "no contact email")
    if report.reporter.emergency_contact is None:
        add(
            "reporter_no_emergency_contact",
            "warning",
            "reporter.emergency_contact",
            "no 24-hour emergency contact: law enforcement cannot reach you in an emergency",
        )
    if report.incident.incident_date_time is None:
        add("no_incident_time", "blocking", "incident.incident_date_time", "no incident date-time")
    reason = (report.incident.escalation_reason or "").strip()
    if report.incident.escalate_to_high_priority and not reason:
        add(
            "escalation_without_reason",
            "blocking",
            "incident.escalation_reason",
            "escalated to high priority without a reason: NCMEC escalates only on a reason's "
            "text, so the report would go out unescalated",
        )
    if len(reason) > MAX_ESCALATION_CHARS:
        add(
            "escalation_reason_too_long",
            "warning",
            "incident.escalation_reason",
            f"the escalation reason is cut to NCMEC's {MAX_ESCALATION_CHARS} characters",
        )
    if not (report.web_page_url or report.chat or report.peer_to_peer or report.live_streams):
        add(
            "no_incident_details",
            "warning",
            "web_page_url",
            "no web page, chat, peer-to-peer or stream details: NCMEC expects at least one "
            "(e.g. the URL where the content was posted)",
        )
    if len(report.persons) > 1:
        add(
            "several_reported_persons",
            "warning",
            "persons",
            f"{len(report.persons)} reported accounts: NCMEC's report takes one, so the first "
            "is structured and the others are described in additionalInfo (or file one report "
            "per account)",
        )
    events = [(f"persons[{i}]", p) for i, p in enumerate(report.persons)] + [
        (f"files[{k}].upload_ip_event", f) for k, f in enumerate(report.files)
    ]
    for base, holder in events:
        evs = (
            [(f"{base}.ip_capture_events[{j}]", e) for j, e in enumerate(holder.ip_capture_events)]
            if isinstance(holder, ReportedPerson)
            else [(base, holder.upload_ip_event)]
            if holder.upload_ip_event is not None
            else []
        )
        for path, ev in evs:
            if ev.event_name not in IP_EVENT_NAMES:
                add(
                    "ip_event_name_unknown",
                    "blocking",
                    f"{path}.event_name",
                    f"event name {ev.event_name!r} is not one NCMEC takes: "
                    f"{', '.join(IP_EVENT_NAMES)}",
                )
    if report.chat is not None and not (report.chat.excerpt or "").strip():
        add(
            "chat_without_conversation",
            "blocking",
            "chat.excerpt",
            "a chat incident without the conversation: include the relevant messages",
        )
    live = report.incident.live_streaming or any(f.live_streaming for f in report.files)
    if live and not report.live_streams:
        add(
            "live_without_stream_details",
            "warning",
            "live_streams",
            "a livestream or video-call incident without its details: give the stream or "
            "call id, its start time and the viewers if known",
        )
    for i, stream in enumerate(report.live_streams):
        if stream.started_at is None:
            add(
                "live_stream_no_start",
                "warning",
                f"live_streams[{i}].started_at",
                "no start time of the stream or call",
            )
        if not stream.stream_id:
            add(
                "live_stream_no_id",
                "warning",
                f"live_streams[{i}].stream_id",
                "no id of the stream or call: the platform's records cannot be matched",
            )
    if not report.persons:
        add("no_reported_person", "blocking", "persons", "no reported person or account")
    for i, person in enumerate(report.persons):
        base = f"persons[{i}]"
        if not person.esp_identifier and not person.screen_name:
            add("person_no_identifier", "blocking", base, "no account identifier or screen name")
        if not person.screen_name:
            add("person_no_screen_name", "warning", f"{base}.screen_name", "no screen name")
        if not person.profile_urls:
            add("person_no_profile_url", "warning", f"{base}.profile_urls", "no profile URL")
        if not person.ip_capture_events:
            add("person_no_ip", "warning", f"{base}.ip_capture_events", "no IP address captured")
        for j, ev in enumerate(person.ip_capture_events):
            path = f"{base}.ip_capture_events[{j}]"
            if ev.port is None:
                add(
                    "ip_without_source_port",
                    "warning",
                    f"{path}.port",
                    f"IP {ev.ip_address} without a source port: behind carrier-grade NAT "
                    "the subscriber often cannot be identified (RFC 6302)",
                )
            if ev.date_time is None:
                add(
                    "ip_without_time",
                    "blocking",
                    f"{path}.date_time",
                    f"IP {ev.ip_address} without a date-time: it cannot be resolved",
                )
    if not report.files:
        add("no_files", "warning", "files", "no files: say what content the incident concerns")
    for k, f in enumerate(report.files):
        path = f"files[{k}]"
        if not (f.md5 or f.sha1 or f.sha256):
            add("file_no_hash", "blocking", path, "no MD5, SHA-1 or SHA-256")
        if f.viewed_by_esp is not True:
            add(
                "file_not_viewed",
                "warning",
                f"{path}.viewed_by_esp",
                "no person at the platform viewed the file: say so, or have it reviewed",
            )
        if f.upload_date_time is None:
            add("file_no_upload_time", "warning", f"{path}.upload_date_time", "no upload time")
        if f.upload_ip_event is not None and f.upload_ip_event.port is None:
            add(
                "ip_without_source_port",
                "warning",
                f"{path}.upload_ip_event.port",
                f"upload IP {f.upload_ip_event.ip_address} without a source port (RFC 6302)",
            )
    return out


def blocking(findings: list[Finding]) -> list[Finding]:
    """The blocking findings among ``findings``."""
    return [f for f in findings if f.severity == "blocking"]


__all__ = ["Finding", "Severity", "blocking", "check_report"]
