"""Build a report from a confirmed case (pure: the case in, the report out)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError

from safestream.cases.model import Case, CaseEvent, CaseStatus, EventKind
from safestream.errors import ConfigError, ConflictError, InputError
from safestream.reports.model import (
    ChatIncident,
    Contact,
    IncidentSummary,
    IncidentType,
    IpCaptureEvent,
    LiveStreamIncident,
    Report,
    ReportedPerson,
    Reporter,
    ReportFile,
)


@dataclass(frozen=True)
class BuildOptions:
    """What a person adds to a case to make a report of it."""

    reporter: Reporter
    platform: str | None = None
    incident_type: IncidentType = IncidentType.CHILD_PORNOGRAPHY
    #: The relevant messages of a chat incident (the platform's own copy).
    chat_excerpt: str | None = None
    additional_info: str | None = None
    #: Whether a person at the platform viewed the files (None: not recorded).
    files_viewed_by_esp: bool | None = None
    publicly_available: bool | None = None


def reporter_from_env() -> Reporter:
    """The reporting organisation from ``SAFESTREAM_REPORTER_*`` variables."""
    org = os.environ.get("SAFESTREAM_REPORTER_ORG")
    name = os.environ.get("SAFESTREAM_REPORTER_NAME")
    if not org or not name:
        raise ConfigError(
            "set SAFESTREAM_REPORTER_ORG and SAFESTREAM_REPORTER_NAME (and _EMAIL, _PHONE, "
            "_EMERGENCY_NAME, _EMERGENCY_PHONE), or pass the reporter explicitly"
        )
    emergency = None
    if os.environ.get("SAFESTREAM_REPORTER_EMERGENCY_NAME"):
        emergency = Contact(
            name=os.environ["SAFESTREAM_REPORTER_EMERGENCY_NAME"],
            phone=os.environ.get("SAFESTREAM_REPORTER_EMERGENCY_PHONE"),
            email=os.environ.get("SAFESTREAM_REPORTER_EMERGENCY_EMAIL"),
        )
    return Reporter(
        organisation=org,
        contact=Contact(
            name=name,
            email=os.environ.get("SAFESTREAM_REPORTER_EMAIL"),
            phone=os.environ.get("SAFESTREAM_REPORTER_PHONE"),
        ),
        emergency_contact=emergency,
    )


def _context(e: CaseEvent) -> dict[str, Any]:
    ctx = e.record.get("context") or {}
    return dict(ctx)


def _ip_event(e: CaseEvent) -> IpCaptureEvent | None:
    ctx = _context(e)
    if not ctx.get("ip_address"):
        return None
    # The server's receive time, not the client's clock: it is when this IP and
    # port were seen, which is what a provider resolves against its NAT logs.
    return IpCaptureEvent(
        ip_address=str(ctx["ip_address"]),
        port=ctx.get("source_port"),
        event_name="Upload",
        date_time=e.observed_at,
    )


def _persons(events: list[CaseEvent]) -> list[ReportedPerson]:
    by_account: dict[str, list[CaseEvent]] = {}
    for e in events:
        by_account.setdefault(str(_context(e).get("account_id") or ""), []).append(e)
    persons = []
    for account, evs in by_account.items():
        names = [n for e in evs if (n := _context(e).get("username"))]
        urls = list(dict.fromkeys(u for e in evs if (u := _context(e).get("profile_url"))))
        ips = [ip for e in evs if (ip := _ip_event(e)) is not None]
        persons.append(
            ReportedPerson(
                esp_identifier=account or None,
                screen_name=names[-1] if names else None,
                profile_urls=urls,
                ip_capture_events=ips,
            )
        )
    return persons


def _detected_by(events: list[CaseEvent]) -> list[str]:
    out: list[str] = []
    for e in events:
        for m in e.record.get("matches") or []:
            if isinstance(m, dict) and m.get("bank"):
                out.append(f"bank:{m['bank']}")
        if e.kind == EventKind.NEW:
            out.append("classifier")
    return list(dict.fromkeys(out))


def _aware(value: Any) -> datetime | None:
    """A stored ISO time as an aware datetime (None when absent, naive or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _live_streams(events: list[CaseEvent], platform: str | None) -> list[LiveStreamIncident]:
    """One livestream incident per stream of the case's ``live`` detections.

    The live monitor's check records carry the stream id, its start and the
    stream times of the triggering frames (``safestream.live.cases``); an older
    record without them still gives the detection time, and the client time
    of a live record is the stream's start.
    """
    streams: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.kind != EventKind.LIVE:
            continue
        live = dict(e.record.get("live") or {})
        stream_id = str(live.get("stream_id") or "")
        started = _aware(live.get("stream_started_at")) or _aware(
            _context(e).get("client_timestamp")
        )
        entry = streams.setdefault(stream_id, {"started": started, "detected": [], "times": []})
        if entry["started"] is None or (started is not None and started < entry["started"]):
            entry["started"] = started
        entry["detected"].append(_aware(live.get("detected_at")) or e.observed_at)
        for t in live.get("sample_times_s") or []:
            if isinstance(t, int | float) and not isinstance(t, bool) and t >= 0:
                entry["times"].append(float(t))
    return [
        LiveStreamIncident(
            platform=platform,
            stream_id=stream_id or None,
            started_at=entry["started"],
            detected_at=sorted(set(entry["detected"])),
            sample_times_s=sorted(set(entry["times"])),
        )
        for stream_id, entry in streams.items()
    ]


def build_report(case: Case, options: BuildOptions) -> Report:
    """A report of a confirmed case: one incident, its accounts, its distinct files.

    Raises ConflictError for a case that is not confirmed, InputError naming
    the field when an option does not fit the report model (e.g. too long).
    """
    try:
        return _build_report(case, options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'report'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"cannot build a report of case {case.id}: {problems}") from None


def _build_report(case: Case, options: BuildOptions) -> Report:
    if case.status not in (CaseStatus.CONFIRMED, CaseStatus.REPORTED):
        raise ConflictError(
            f"case {case.id} is {case.status!r}: only a confirmed case can be reported"
        )
    events = sorted(case.events, key=lambda e: e.observed_at)
    files = []
    for group in case.files().values():
        first = group[0]
        hashes = first.record.get("hashes") or {}
        scanned = first.record.get("file") or {}
        files.append(
            ReportFile(
                # A batch scan finds stored media: its time is the scan's, not the upload's.
                original_file_name=PurePath(scanned["path"]).name[:500] if scanned else None,
                upload_date_time=None if scanned else first.observed_at,
                md5=hashes.get("md5"),
                sha1=hashes.get("sha1"),
                sha256=hashes.get("sha256"),
                pdq=hashes.get("pdq"),
                viewed_by_esp=options.files_viewed_by_esp,
                publicly_available=options.publicly_available,
                live_streaming=any(e.kind == EventKind.LIVE for e in group),
                upload_ip_event=_ip_event(first),
                detected_by=_detected_by(group),
            )
        )
    live = any(e.kind == EventKind.LIVE for e in events)
    chat = any(_context(e).get("surface") == "chat" for e in events)
    how = _detected_by(events)
    incident_time: datetime | None = events[0].observed_at if events else None
    return Report(
        case_id=case.id,
        reporter=options.reporter,
        incident=IncidentSummary(
            incident_type=options.incident_type,
            platform=options.platform,
            incident_date_time=incident_time,
            escalate_to_high_priority=live,
            escalation_reason=(
                "detected on a livestream or video call: abuse may be ongoing" if live else None
            ),
            how_detected=", ".join(how) if how else None,
            live_streaming=live,
        ),
        chat=ChatIncident(excerpt=options.chat_excerpt) if chat or options.chat_excerpt else None,
        live_streams=_live_streams(events, options.platform),
        persons=_persons(events),
        files=files,
        additional_info=options.additional_info,
    )


__all__ = ["BuildOptions", "build_report", "reporter_from_env"]
