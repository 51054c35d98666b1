"""The case workflow and priority, as pure functions over plain data.

Priority puts what a reviewer must see first at the top: a livestream or video
call (abuse that may be going on now) before new material a classifier flagged
(a possible new victim) before known material (already in a bank). Recency,
the number of distinct files and prior reports on the account add to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from safestream.errors import ConfigError, ConflictError, InputError


class CaseStatus(StrEnum):
    """Where a case is in its workflow."""

    NEW = "new"
    IN_REVIEW = "in_review"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    REPORTED = "reported"


#: Allowed moves; anything else is refused (409 in the API).
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.NEW: frozenset({CaseStatus.IN_REVIEW}),
    CaseStatus.IN_REVIEW: frozenset({CaseStatus.CONFIRMED, CaseStatus.DISMISSED}),
    CaseStatus.CONFIRMED: frozenset({CaseStatus.REPORTED}),
    CaseStatus.DISMISSED: frozenset(),
    CaseStatus.REPORTED: frozenset(),
}

#: Open cases take new detections of their account within the window.
OPEN_STATUSES = frozenset({CaseStatus.NEW, CaseStatus.IN_REVIEW})

#: Reason codes a decision to each status may carry.
REASON_CODES: dict[CaseStatus, frozenset[str]] = {
    CaseStatus.IN_REVIEW: frozenset({"assigned", "escalated"}),
    CaseStatus.CONFIRMED: frozenset(
        {"known_material_confirmed", "new_material_confirmed", "live_abuse_confirmed"}
    ),
    CaseStatus.DISMISSED: frozenset(
        {"false_positive", "benign_content", "not_actionable", "duplicate_case"}
    ),
    CaseStatus.REPORTED: frozenset({"report_submitted"}),
}


class EventKind(StrEnum):
    """How a detection was made; decides its weight in the priority."""

    LIVE = "live"  # on a livestream or video call
    NEW = "new"  # flagged by a classifier, no bank match: possibly new material
    KNOWN = "known"  # matched a bank of known material


def check_transition(current: str, target: str, reason_code: str) -> CaseStatus:
    """The target status if ``current -> target`` with ``reason_code`` is allowed.

    Raises InputError for an unknown status or reason code, ConflictError for a
    move the workflow does not allow from the current status.
    """
    try:
        to = CaseStatus(target)
    except ValueError:
        names = ", ".join(s.value for s in CaseStatus)
        raise InputError(f"unknown case status {target!r}; statuses: {names}") from None
    codes = REASON_CODES.get(to, frozenset())
    if reason_code not in codes:
        raise InputError(
            f"reason code {reason_code!r} does not fit status {to.value!r}; "
            f"use one of: {', '.join(sorted(codes))}"
        )
    frm = CaseStatus(current)
    if to not in TRANSITIONS[frm]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[frm])) or "none (final)"
        raise ConflictError(
            f"a case in status {frm.value!r} cannot move to {to.value!r}; allowed: {allowed}"
        )
    return to


@dataclass(frozen=True)
class CaseConfig:
    """How detections group into cases and which count as detections."""

    #: A detection joins its account's open case when it comes within this many
    #: seconds of the case's last detection (a sliding incident window).
    window_s: float = 24 * 3600.0
    #: A check counts as a classifier detection at or above this score.
    classifier_threshold: float = 0.8
    #: A live case whose last detection is this recent is "ongoing".
    ongoing_s: float = 15 * 60.0

    def __post_init__(self) -> None:
        if self.window_s < 0 or self.ongoing_s < 0:
            raise ConfigError("case windows must not be negative")
        if not 0.0 < self.classifier_threshold <= 1.0:
            raise ConfigError("the classifier threshold must be in (0, 1]")

    @classmethod
    def from_env(cls) -> CaseConfig:
        """From ``SAFESTREAM_CASE_WINDOW_S`` and ``SAFESTREAM_CASE_CLASSIFIER_THRESHOLD``."""
        try:
            window = float(os.environ.get("SAFESTREAM_CASE_WINDOW_S", cls.window_s))
            threshold = float(
                os.environ.get("SAFESTREAM_CASE_CLASSIFIER_THRESHOLD", cls.classifier_threshold)
            )
        except ValueError as exc:
            raise ConfigError(f"case settings must be numbers: {exc}") from None
        return cls(window_s=window, classifier_threshold=threshold)


@dataclass(frozen=True)
class Priority:
    """A case's priority score and the reasons that make it up."""

    score: int
    reasons: tuple[str, ...]


def priority(
    *,
    kinds: set[str],
    distinct_files: int,
    last_seen_at: datetime,
    now: datetime,
    prior_reports: int,
    config: CaseConfig,
) -> Priority:
    """Score a case; higher is more urgent. Pure: the same inputs give the same score."""
    score = 0
    reasons: list[str] = []
    age_s = max(0.0, (now - last_seen_at).total_seconds())
    if EventKind.LIVE in kinds:
        score += 1000
        reasons.append("live: detected on a livestream or video call (+1000)")
        if age_s <= config.ongoing_s:
            score += 500
            reasons.append("ongoing: live detection in the last minutes (+500)")
    if EventKind.NEW in kinds:
        score += 400
        reasons.append("new material flagged by a classifier (+400)")
    if EventKind.KNOWN in kinds:
        score += 100
        reasons.append("known material matched a bank (+100)")
    files = min(distinct_files, 20) * 10
    if files:
        score += files
        reasons.append(f"{distinct_files} distinct file(s) (+{files})")
    hours = int(age_s // 3600)
    recency = max(0, 100 - 2 * hours)
    if recency:
        score += recency
        reasons.append(f"last detection {hours} h ago (+{recency})")
    if prior_reports:
        prior = min(prior_reports, 4) * 50
        score += prior
        reasons.append(f"{prior_reports} prior report(s) on the account (+{prior})")
    return Priority(score, tuple(reasons))


def detection_kind(
    *, outcome: str, surface: str | None, scores: dict[str, float | None] | None, threshold: float
) -> EventKind | None:
    """What kind of detection a check record is, or None when it is not one."""
    flagged = any(v is not None and v >= threshold for v in (scores or {}).values())
    if outcome != "match" and not flagged:
        return None
    if surface == "live":
        return EventKind.LIVE
    return EventKind.KNOWN if outcome == "match" else EventKind.NEW


@dataclass(frozen=True)
class CaseEvent:
    """One detection in a case: a check record's context, hashes and matches."""

    content_id: str
    kind: str
    sha256: str | None
    observed_at: datetime
    record: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "content_id": self.content_id,
            "kind": self.kind,
            "sha256": self.sha256,
            "observed_at": self.observed_at.isoformat(),
            "record": self.record,
        }


@dataclass(frozen=True)
class Case:
    """A case with its detections."""

    id: int
    account_id: str | None
    status: str
    first_seen_at: datetime
    last_seen_at: datetime
    created_at: datetime
    reviewed_at: datetime | None
    reported_at: datetime | None
    decided_by: str | None
    reason_code: str | None
    decision_note: str | None
    events: tuple[CaseEvent, ...]
    prior_reports: int = 0

    def files(self) -> dict[str, list[CaseEvent]]:
        """Events deduplicated by content SHA-256 (first seen first); key is the hash."""
        out: dict[str, list[CaseEvent]] = {}
        for e in sorted(self.events, key=lambda e: e.observed_at):
            out.setdefault(e.sha256 or f"content:{e.content_id}", []).append(e)
        return out

    def priority(self, now: datetime, config: CaseConfig) -> Priority:
        """This case's priority at ``now``."""
        return priority(
            kinds={e.kind for e in self.events},
            distinct_files=len(self.files()),
            last_seen_at=self.last_seen_at,
            now=now,
            prior_reports=self.prior_reports,
            config=config,
        )

    def to_dict(self, now: datetime, config: CaseConfig, *, events: bool = True) -> dict[str, Any]:
        """JSON-ready dict with the priority at ``now``."""
        p = self.priority(now, config)
        out: dict[str, Any] = {
            "id": self.id,
            "account_id": self.account_id,
            "status": self.status,
            "priority": p.score,
            "priority_reasons": list(p.reasons),
            "first_seen_at": self.first_seen_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "created_at": self.created_at.isoformat(),
            "reviewed_at": self.reviewed_at.isoformat() if self.reviewed_at else None,
            "reported_at": self.reported_at.isoformat() if self.reported_at else None,
            "decided_by": self.decided_by,
            "reason_code": self.reason_code,
            "decision_note": self.decision_note,
            "event_count": len(self.events),
            "file_count": len(self.files()),
            "kinds": sorted({e.kind for e in self.events}),
        }
        if events:
            out["events"] = [e.to_dict() for e in self.events]
        return out


__all__ = [
    "OPEN_STATUSES",
    "REASON_CODES",
    "TRANSITIONS",
    "Case",
    "CaseConfig",
    "CaseEvent",
    "CaseStatus",
    "EventKind",
    "Priority",
    "check_transition",
    "detection_kind",
    "priority",
]
