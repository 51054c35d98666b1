"""The typed model of a law-enforcement report (pydantic, so it validates JSON input).

Times are timezone-aware (``AwareDatetime``): a report with a naive time is
refused at the boundary, since an investigator cannot place it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class IncidentType(StrEnum):
    """Incident types, named after the CyberTipline categories (as modelled)."""

    CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
    ONLINE_ENTICEMENT = "Online Enticement of Children for Sexual Acts"
    CHILD_SEX_TRAFFICKING = "Child Sex Trafficking"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Model):
    """A person to contact at the reporting organisation."""

    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=300)
    phone: str | None = Field(default=None, max_length=100)


class Reporter(_Model):
    """Who files the report."""

    organisation: str = Field(min_length=1, max_length=300)
    contact: Contact
    #: Reachable at any hour for an emergency (a child in danger now).
    emergency_contact: Contact | None = None


#: The event names NCMEC's schema takes for an IP or device capture.
IP_EVENT_NAMES = ("Login", "Registration", "Purchase", "Upload", "Other", "Unknown")


class IpCaptureEvent(_Model):
    """One IP address seen for the reported account, with its source port and time."""

    ip_address: str = Field(min_length=1, max_length=64)
    #: Source port: behind carrier-grade NAT the address alone rarely names a subscriber.
    port: int | None = Field(default=None, ge=0, le=65535)
    #: One of :data:`IP_EVENT_NAMES` for NCMEC (the quality gate says so otherwise).
    event_name: str = Field(default="Upload", max_length=64)
    date_time: AwareDatetime | None = None
    possible_proxy: bool | None = None


class ContactPoint(_Model):
    """An email address or phone number of a person, and whether the platform verified it."""

    value: str = Field(min_length=1, max_length=300)
    verified: bool | None = None


class DeviceId(_Model):
    """A device identifier seen for an account (e.g. ``IMEI``, ``IDFA``, ``Android ID``)."""

    id_type: str = Field(min_length=1, max_length=64)
    value: str = Field(min_length=1, max_length=300)


class AccountDisabled(_Model):
    """The platform disabled the reported account: when, for good or not, and was the user told."""

    disabled_at: AwareDatetime
    permanent: bool = True
    #: Whether the user was told (None: not recorded).
    user_notified: bool | None = None
    user_notified_at: AwareDatetime | None = None


class ReportedPerson(_Model):
    """A reported account."""

    esp_identifier: str | None = Field(default=None, max_length=200)
    screen_name: str | None = Field(default=None, max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    profile_urls: list[str] = Field(default_factory=list, max_length=100)
    emails: list[ContactPoint] = Field(default_factory=list, max_length=100)
    phones: list[ContactPoint] = Field(default_factory=list, max_length=100)
    ip_capture_events: list[IpCaptureEvent] = Field(default_factory=list, max_length=10_000)
    device_ids: list[DeviceId] = Field(default_factory=list, max_length=100)
    #: Whether and when the platform disabled the account (None: not disabled or not recorded).
    account_disabled: AccountDisabled | None = None


class ReportFile(_Model):
    """A file of the incident: hashes and how it was handled (never the content)."""

    original_file_name: str | None = Field(default=None, max_length=500)
    upload_date_time: AwareDatetime | None = None
    md5: str | None = Field(default=None, max_length=32)
    sha1: str | None = Field(default=None, max_length=40)
    sha256: str | None = Field(default=None, max_length=64)
    pdq: str | None = Field(default=None, max_length=64)
    #: Whether a person at the platform viewed the file (None: not recorded).
    viewed_by_esp: bool | None = None
    publicly_available: bool | None = None
    live_streaming: bool = False
    generative_ai: bool = False
    upload_ip_event: IpCaptureEvent | None = None
    #: How the file was detected: bank names matched, or "classifier".
    detected_by: list[str] = Field(default_factory=list, max_length=100)


class ChatIncident(_Model):
    """A chat or instant-message incident with the conversation excerpt."""

    chat_client: str | None = Field(default=None, max_length=200)
    excerpt: str | None = Field(default=None, max_length=100_000)


class PeerToPeerIncident(_Model):
    """A peer-to-peer incident: the client and the peers' IP capture events."""

    client: str | None = Field(default=None, max_length=200)
    ip_capture_events: list[IpCaptureEvent] = Field(default_factory=list, max_length=10_000)
    file_names: list[str] = Field(default_factory=list, max_length=1000)


class LiveStreamIncident(_Model):
    """A livestream or video-call incident: the stream, when it ran, who watched.

    ``viewers`` are the accounts that watched or paid for the stream, when the
    platform knows them (a viewer or payer may be the one directing the abuse).
    """

    kind: Literal["livestream", "video_call"] = "livestream"
    #: The platform or service the stream or call ran on (e.g. the product's name).
    platform: str | None = Field(default=None, max_length=200)
    #: The platform's id of the stream or call.
    stream_id: str | None = Field(default=None, max_length=300)
    #: Where the stream could be watched (its page), when there is one.
    url: str | None = Field(default=None, max_length=2048)
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    #: Whether anyone else watched or took part (None: not recorded).
    other_viewers_present: bool | None = None
    viewers: list[ReportedPerson] = Field(default_factory=list, max_length=1000)
    #: When the triggering frames were seen, and their times into the stream (seconds).
    detected_at: list[AwareDatetime] = Field(default_factory=list, max_length=10_000)
    sample_times_s: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=list, max_length=10_000
    )

    @model_validator(mode="after")
    def _times_in_order(self) -> LiveStreamIncident:
        if self.started_at and self.ended_at and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


class IncidentSummary(_Model):
    """What happened, when and how it was found."""

    incident_type: IncidentType = IncidentType.CHILD_PORNOGRAPHY
    platform: str | None = Field(default=None, max_length=200)
    incident_date_time: AwareDatetime | None = None
    escalate_to_high_priority: bool = False
    escalation_reason: str | None = Field(default=None, max_length=5000)
    how_detected: str | None = Field(default=None, max_length=1000)
    live_streaming: bool = False


class Report(_Model):
    """A law-enforcement report of one incident (one case), possibly many files."""

    case_id: int | None = None
    reporter: Reporter
    incident: IncidentSummary
    web_page_url: str | None = Field(default=None, max_length=2048)
    chat: ChatIncident | None = None
    peer_to_peer: PeerToPeerIncident | None = None
    #: Livestreams or video calls of the incident (one per stream or call).
    live_streams: list[LiveStreamIncident] = Field(default_factory=list, max_length=100)
    persons: list[ReportedPerson] = Field(default_factory=list, max_length=100)
    #: People the reported person sent the content to, when known.
    intended_recipients: list[ReportedPerson] = Field(default_factory=list, max_length=100)
    #: Victims, when the platform knows them (an account, a screen name).
    victims: list[ReportedPerson] = Field(default_factory=list, max_length=100)
    files: list[ReportFile] = Field(default_factory=list, max_length=10_000)
    additional_info: str | None = Field(default=None, max_length=100_000)


__all__ = [
    "IP_EVENT_NAMES",
    "AccountDisabled",
    "ChatIncident",
    "Contact",
    "ContactPoint",
    "DeviceId",
    "IncidentSummary",
    "IncidentType",
    "IpCaptureEvent",
    "LiveStreamIncident",
    "PeerToPeerIncident",
    "Report",
    "ReportFile",
    "ReportedPerson",
    "Reporter",
]
