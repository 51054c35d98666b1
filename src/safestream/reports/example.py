"""A complete example report with synthetic people and data (documentation values only).

Addresses are from the documentation ranges (192.0.2.0/24, 2001:db8::/32),
domains are example.org, hashes are of no real file.
"""

from __future__ import annotations

from datetime import UTC, datetime

from safestream.reports.model import (
    ChatIncident,
    Contact,
    IncidentSummary,
    IncidentType,
    IpCaptureEvent,
    Report,
    ReportedPerson,
    Reporter,
    ReportFile,
)

_T = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def example_report() -> Report:
    """A report that passes the quality gate with no finding at all."""
    upload = IpCaptureEvent(ip_address="192.0.2.10", port=51234, event_name="Upload", date_time=_T)
    return Report(
        case_id=None,
        reporter=Reporter(
            organisation="Example Platform Ltd",
            contact=Contact(name="Alex Example", email="trust@example.org", phone="+1 555 0100"),
            emergency_contact=Contact(
                name="On-call Safety Lead", email="oncall@example.org", phone="+1 555 0199"
            ),
        ),
        incident=IncidentSummary(
            incident_type=IncidentType.CHILD_PORNOGRAPHY,
            platform="Example Chat",
            incident_date_time=_T,
            how_detected="bank:known, classifier",
        ),
        chat=ChatIncident(
            chat_client="Example Chat web",
            excerpt='[09:00:01] user-1001: <synthetic example message> & "quoted"',
        ),
        persons=[
            ReportedPerson(
                esp_identifier="acct-1001",
                screen_name="user-1001",
                display_name="Example User",
                profile_urls=["https://example.org/u/acct-1001"],
                ip_capture_events=[
                    upload,
                    IpCaptureEvent(
                        ip_address="2001:db8::1001",
                        port=443,
                        event_name="Login",
                        date_time=datetime(2026, 3, 1, 8, 55, tzinfo=UTC),
                    ),
                ],
            )
        ],
        files=[
            ReportFile(
                original_file_name="example-1.png",
                upload_date_time=_T,
                md5="0" * 31 + "1",
                sha1="0" * 39 + "1",
                sha256="0" * 63 + "1",
                pdq="f" * 64,
                viewed_by_esp=True,
                publicly_available=False,
                upload_ip_event=upload,
                detected_by=["bank:known"],
            )
        ],
        additional_info="Synthetic example report: every value is a documentation value.",
    )


__all__ = ["example_report"]
