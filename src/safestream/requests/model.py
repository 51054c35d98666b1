"""Request types, deadline standards and the status workflow (pure)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from safestream.errors import ConfigError, ConflictError, InputError


class RequestType(StrEnum):
    """What law enforcement asks for."""

    PRESERVATION = "preservation"
    EMERGENCY_DISCLOSURE = "emergency_disclosure"
    PRODUCTION_ORDER = "production_order"
    SUBPOENA = "subpoena"
    WARRANT = "warrant"
    MLAT = "mlat"
    CLOUD_ACT = "cloud_act"


class Status(StrEnum):
    """Where a request stands."""

    RECEIVED = "received"
    VERIFIED = "verified"
    IN_PROGRESS = "in_progress"
    RESPONDED = "responded"
    REJECTED = "rejected"


class Verification(StrEnum):
    """Whether the requester's identity and authority were verified."""

    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    FAILED = "failed"


#: Allowed moves of the workflow; responded and rejected are final.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.RECEIVED: frozenset({Status.VERIFIED, Status.REJECTED}),
    Status.VERIFIED: frozenset({Status.IN_PROGRESS, Status.REJECTED}),
    Status.IN_PROGRESS: frozenset({Status.RESPONDED, Status.REJECTED}),
    Status.RESPONDED: frozenset(),
    Status.REJECTED: frozenset(),
}
OPEN_STATUSES = (Status.RECEIVED, Status.VERIFIED, Status.IN_PROGRESS)


def check_transition(current: Status, target: Status, reason: str | None) -> None:
    """Raise ConflictError for a move the workflow does not allow."""
    allowed = TRANSITIONS[current]
    if target not in allowed:
        names = ", ".join(sorted(s.value for s in allowed)) or "none (it is final)"
        raise ConflictError(
            f"a request in status {current.value!r} cannot move to {target.value!r}; "
            f"allowed: {names}"
        )
    if target == Status.REJECTED and not (reason or "").strip():
        raise InputError("rejecting a request needs a reason")


@dataclass(frozen=True)
class DeadlinePreset:
    """Minimum response times for standard and emergency requests."""

    standard: timedelta
    emergency: timedelta

    def to_dict(self) -> dict[str, float]:
        """Hours, JSON-ready."""
        return {
            "standard_hours": self.standard.total_seconds() / 3600,
            "emergency_hours": self.emergency.total_seconds() / 3600,
        }


#: Built-in presets. ``default``: 24 h / 1 h (the minimum standard this project
#: argues for, after Australia's 24-hour removal notices); EU e-Evidence
#: Regulation (2023/1543) production orders: 10 days, 8 hours in emergencies.
PRESETS: dict[str, DeadlinePreset] = {
    "default": DeadlinePreset(timedelta(hours=24), timedelta(hours=1)),
    "eu-e-evidence": DeadlinePreset(timedelta(days=10), timedelta(hours=8)),
    "au-online-safety": DeadlinePreset(timedelta(hours=24), timedelta(hours=1)),
}
ENV_PRESETS = "SAFESTREAM_LE_DEADLINES"
ENV_ESCALATE = "SAFESTREAM_LE_ESCALATE_AT"


@dataclass(frozen=True)
class DeadlineStandards:
    """Presets by name, which preset each jurisdiction uses, and escalation points.

    ``escalate_at`` are fractions of the total time that remain when an
    escalation fires (0.5: half the time is left); ``overdue`` always fires.
    """

    presets: Mapping[str, DeadlinePreset] = field(default_factory=lambda: dict(PRESETS))
    jurisdictions: Mapping[str, str] = field(
        default_factory=lambda: {"eu": "eu-e-evidence", "au": "au-online-safety"}
    )
    escalate_at: tuple[float, ...] = (0.5, 0.25)

    def __post_init__(self) -> None:
        if "default" not in self.presets:
            raise ConfigError("deadline standards need a 'default' preset")
        for name, preset in self.presets.items():
            if preset.standard <= timedelta(0) or preset.emergency <= timedelta(0):
                raise ConfigError(f"deadline preset {name!r}: times must be positive")
        for jur, name in self.jurisdictions.items():
            if name not in self.presets:
                raise ConfigError(f"jurisdiction {jur!r} names unknown preset {name!r}")
        if not all(0 < f < 1 for f in self.escalate_at):
            raise ConfigError(f"{ENV_ESCALATE}: fractions must be between 0 and 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeadlineStandards:
        """Built-ins, extended by ``SAFESTREAM_LE_DEADLINES`` (JSON) and ``..._ESCALATE_AT``.

        ``SAFESTREAM_LE_DEADLINES='{"presets": {"uk": {"standard_hours": 48,
        "emergency_hours": 2}}, "jurisdictions": {"gb": "uk"}}'``;
        ``SAFESTREAM_LE_ESCALATE_AT=0.5,0.25,0.1``.
        """
        env = os.environ if environ is None else environ
        base = cls()
        presets = dict(base.presets)
        jurisdictions = dict(base.jurisdictions)
        raw = env.get(ENV_PRESETS, "").strip()
        if raw:
            try:
                doc = json.loads(raw)
                for name, spec in (doc.get("presets") or {}).items():
                    presets[str(name)] = DeadlinePreset(
                        timedelta(hours=float(spec["standard_hours"])),
                        timedelta(hours=float(spec["emergency_hours"])),
                    )
                jurisdictions.update(
                    {str(k).lower(): str(v) for k, v in (doc.get("jurisdictions") or {}).items()}
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(
                    f"{ENV_PRESETS} must be JSON like "
                    '{"presets": {"name": {"standard_hours": 24, "emergency_hours": 1}}, '
                    f'"jurisdictions": {{"xx": "name"}}}}: {exc}'
                ) from None
        escalate = base.escalate_at
        raw_esc = env.get(ENV_ESCALATE, "").strip()
        if raw_esc:
            try:
                escalate = tuple(float(x) for x in raw_esc.split(",") if x.strip())
            except ValueError:
                raise ConfigError(f"{ENV_ESCALATE} must be fractions like 0.5,0.25") from None
        return cls(presets, jurisdictions, escalate)

    def preset_for(self, jurisdiction: str, preset: str | None) -> str:
        """The preset name to use: the one asked for, else the jurisdiction's, else default."""
        if preset:
            if preset not in self.presets:
                raise InputError(
                    f"unknown deadline preset {preset!r}; known: {', '.join(sorted(self.presets))}"
                )
            return preset
        jur = jurisdiction.lower()
        return self.jurisdictions.get(jur) or self.jurisdictions.get(jur.split("-")[0]) or "default"

    def deadline(self, received_at: datetime, *, emergency: bool, preset: str) -> datetime:
        """The response deadline of a request received at ``received_at``."""
        if received_at.tzinfo is None:
            raise InputError("received time must carry a timezone (e.g. 2026-01-01T10:00:00Z)")
        p = self.presets[preset]
        return received_at + (p.emergency if emergency else p.standard)


def is_emergency(request_type: RequestType) -> bool:
    """Emergency disclosure requests run on the emergency clock."""
    return request_type == RequestType.EMERGENCY_DISCLOSURE


def escalation_level(
    received_at: datetime, deadline_at: datetime, now: datetime, fractions: tuple[float, ...]
) -> list[str]:
    """Escalation levels reached at ``now``: fraction labels, then ``overdue``."""
    total = (deadline_at - received_at).total_seconds()
    left = (deadline_at - now).total_seconds()
    levels = [f"{f:g}" for f in sorted(fractions, reverse=True) if total > 0 and left <= f * total]
    if left <= 0:
        levels.append("overdue")
    return levels


@dataclass(frozen=True)
class NewRequest:
    """A request as received, validated."""

    request_type: RequestType
    agency: str
    officer: dict[str, Any]
    legal_basis: str
    jurisdiction: str
    identifiers: list[str]
    data_categories: list[str]
    received_at: datetime
    non_disclosure: bool = False
    verification: Verification = Verification.UNVERIFIED
    reference: str = ""
    preset: str | None = None
    emergency: bool | None = None

    def __post_init__(self) -> None:
        missing = [
            name
            for name in ("agency", "legal_basis", "jurisdiction")
            if not str(getattr(self, name)).strip()
        ]
        if not self.identifiers or not all(str(i).strip() for i in self.identifiers):
            missing.append("identifiers")
        if not self.data_categories:
            missing.append("data_categories")
        if not (
            self.officer.get("name") and (self.officer.get("email") or self.officer.get("phone"))
        ):
            missing.append("officer (name and email or phone)")
        if missing:
            raise InputError(f"the request is missing: {', '.join(missing)}")
        if self.received_at.tzinfo is None:
            raise InputError("received_at must carry a timezone (e.g. 2026-01-01T10:00:00Z)")
