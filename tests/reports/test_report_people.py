"""Report model: emails and phones (verified or not), device ids, disabled accounts,
intended recipients, victims and peer-to-peer incidents, in the model and the XML.

Every value is a documentation value (example.org, 192.0.2.0/24, +1 555 01xx).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]
from pydantic import ValidationError

from cybertip_support import TEST_XSD
from safestream.reports.cybertipline import export_xml, report_xml
from safestream.reports.example import example_report
from safestream.reports.model import (
    AccountDisabled,
    ContactPoint,
    DeviceId,
    IpCaptureEvent,
    PeerToPeerIncident,
    Report,
    ReportedPerson,
)
from safestream.reports.quality import check_report

T = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _full() -> Report:
    base = example_report()
    person = base.persons[0].model_copy(
        update={
            "emails": [ContactPoint(value="user-1001@example.org", verified=True)],
            "phones": [ContactPoint(value="+1 555 0142", verified=False)],
            "device_ids": [DeviceId(id_type="IMEI", value="000000000000001")],
            "account_disabled": AccountDisabled(disabled_at=T, permanent=True, user_notified=False),
        }
    )
    return base.model_copy(
        update={
            "persons": [person],
            "intended_recipients": [ReportedPerson(screen_name="recipient-<&>-1")],
            "victims": [ReportedPerson(esp_identifier="acct-2002", display_name="Victim Ä")],
            "peer_to_peer": PeerToPeerIncident(
                client="ExampleShare 1.0",
                ip_capture_events=[IpCaptureEvent(ip_address="192.0.2.20", port=6881, date_time=T)],
                file_names=["shared-1.png"],
            ),
        }
    )


def valid_report(document: str) -> bool:
    """Valid against the tests' schema of NCMEC's structure (errors printed if not)."""
    schema = etree.XMLSchema(etree.fromstring(TEST_XSD.encode()))
    ok = bool(schema.validate(etree.fromstring(document.encode())))
    if not ok:
        print(schema.error_log)
    return ok


def test_people_and_accounts_render_in_order() -> None:
    report = _full()
    root = ET.fromstring(report_xml(report))
    assert [c.tag for c in root] == [
        "incidentSummary",
        "internetDetails",
        "internetDetails",
        "reporter",
        "personOrUserReported",
        "intendedRecipient",
        "victim",
        "additionalInfo",
    ]
    # each internetDetails holds exactly one incident
    assert [[c.tag for c in d] for d in root.findall("internetDetails")] == [
        ["chatImIncident"],
        ["peer2peerIncident"],
    ]
    p2p = root.find("internetDetails/peer2peerIncident")
    assert p2p is not None and p2p.findtext("client") == "ExampleShare 1.0"
    assert p2p.findtext("ipCaptureEvent/port") == "6881"
    assert p2p.findtext("fileNames") == "shared-1.png" and p2p.find("fileName") is None
    person = root.find("personOrUserReported")
    assert person is not None
    tags = [c.tag for c in person]
    # emails and phones sit in the leading person block, phones first
    assert tags[0] == "personOrUserReportedPerson" and "email" not in tags
    block = person.find("personOrUserReportedPerson")
    assert block is not None and [c.tag for c in block] == ["phone", "email"]
    assert tags.index("espIdentifier") < tags.index("profileUrl") < tags.index("ipCaptureEvent")
    assert tags.index("ipCaptureEvent") < tags.index("deviceId")
    assert tags[-1] == "accountPermanentlyDisabled"
    email = block.find("email")
    assert email is not None and email.text == "user-1001@example.org"
    assert email.get("verified") == "true"
    assert block.find("phone") is not None and block.find("phone").get("verified") == "false"  # type: ignore[union-attr]
    assert person.findtext("deviceId/idType") == "IMEI"
    assert person.findtext("deviceId/idValue") == "000000000000001"
    # account disabled: a boolean, its dates and notification as attributes
    disabled = person.find("accountPermanentlyDisabled")
    assert disabled is not None and disabled.text == "true" and len(disabled) == 0
    assert disabled.get("disabledDate") == T.isoformat()
    assert disabled.get("userNotified") == "false"
    assert root.findtext("intendedRecipient/screenName") == "recipient-<&>-1"  # escaped, parsed
    assert root.findtext("victim/espIdentifier") == "acct-2002"
    assert root.findtext("victim/displayName") == "Victim Ä"
    assert root.find("victim/victimPerson") is not None  # always present for a victim
    assert valid_report(report_xml(report))
    assert "recipient-&lt;&amp;&gt;-1" in report_xml(report)
    # The bundle export carries the same report element.
    bundle = ET.fromstring(export_xml(report))
    assert bundle.findtext("report/victim/espIdentifier") == "acct-2002"


def test_a_temporarily_disabled_account_and_unknown_verification() -> None:
    person = ReportedPerson(
        esp_identifier="acct-1",
        emails=[ContactPoint(value="a@example.org")],
        account_disabled=AccountDisabled(
            disabled_at=T, permanent=False, user_notified=True, user_notified_at=T
        ),
    )
    report = example_report().model_copy(update={"persons": [person]})
    el = ET.fromstring(report_xml(report)).find("personOrUserReported")
    assert el is not None
    email = el.find("personOrUserReportedPerson/email")
    assert email is not None and email.get("verified") is None
    assert el.find("accountPermanentlyDisabled") is None
    disabled = el.find("accountTemporarilyDisabled")
    assert disabled is not None and disabled.text == "true"
    assert disabled.get("userNotified") == "true"
    assert disabled.get("userNotifiedDate") == T.isoformat()
    assert valid_report(report_xml(report))


def test_json_round_trip_and_quality_gate_unchanged() -> None:
    report = _full()
    again = Report.model_validate_json(report.model_dump_json())
    assert again == report
    assert check_report(report) == check_report(example_report()) == []
    # Older stored reports (without the new fields) still load.
    old = json.loads(example_report().model_dump_json())
    for key in ("intended_recipients", "victims", "peer_to_peer"):
        old.pop(key)
    for key in ("emails", "phones", "device_ids", "account_disabled"):
        old["persons"][0].pop(key)
    assert Report.model_validate(old) == example_report()


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"account_disabled": {"disabled_at": "2026-03-01T10:00:00"}}, "disabled_at"),
        ({"account_disabled": {"permanent": True}}, "disabled_at"),
        ({"emails": [{"value": ""}]}, "value"),
        ({"emails": [{"value": "a@example.org", "verified": "maybe"}]}, "verified"),
        ({"phones": [{"value": "1" * 301}]}, "value"),
        ({"device_ids": [{"value": "x"}]}, "id_type"),
        ({"device_ids": [{"id_type": "IMEI", "value": "1", "extra": 1}]}, "extra"),
    ],
)
def test_bad_person_fields_are_refused_with_their_name(change: dict[str, Any], where: str) -> None:
    raw = json.loads(example_report().model_dump_json())
    raw["persons"][0].update(change)
    with pytest.raises(ValidationError, match=where):
        Report.model_validate(raw)


def test_bad_report_level_fields_are_refused() -> None:
    raw = json.loads(example_report().model_dump_json())
    with pytest.raises(ValidationError, match="victims"):
        Report.model_validate({**raw, "victims": [{"esp_identifier": "x" * 201}]})
    with pytest.raises(ValidationError, match="port"):
        Report.model_validate(
            {**raw, "peer_to_peer": {"ip_capture_events": [{"ip_address": "1", "port": 70000}]}}
        )
