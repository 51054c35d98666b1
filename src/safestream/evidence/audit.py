"""The audit chain: canonical event hashing and verification (pure; SQL in store/audit.py).

Each event's hash is SHA-256 over a canonical JSON document (sorted keys, no
spaces, UTF-8) of its fields *and the previous event's hash*. Changing any
field of an event breaks its own hash; deleting or reordering events breaks
the link (``prev_hash``) of the event after. ``seq`` is not hashed: the link
fixes an event's place, and leaving ``seq`` out is what lets verification tell a
reordering (a valid event whose link points at a later event) from an edit.
The chain head row records the last hash, so dropping events at the end is
detected too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: ``prev_hash`` of the first event.
GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    """One audit event: who did what to which object, when, and why."""

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    reason: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "seq": self.seq,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "reason": self.reason,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical(
    *,
    occurred_at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    reason: str,
    detail: dict[str, Any],
    prev_hash: str,
) -> bytes:
    """The canonical bytes hashed for one event."""
    if occurred_at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    doc = {
        "v": 1,
        "occurred_at": occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "reason": reason,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(**fields: Any) -> str:
    """SHA-256 hex of an event's canonical form."""
    return hashlib.sha256(canonical(**fields)).hexdigest()


def recompute(event: AuditEvent) -> str:
    """The hash an event should have, from its stored fields."""
    return event_hash(
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        reason=event.reason,
        detail=event.detail,
        prev_hash=event.prev_hash,
    )


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of verifying the chain; ``first_bad_seq`` names the first bad event."""

    ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    message: str = "audit chain intact"
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "message": self.message,
        }


def verify_events(events: Iterable[AuditEvent], *, head_seq: int, head_hash: str) -> VerifyResult:
    """Walk events in ``seq`` order and name the first edited, deleted or reordered one."""
    ordered = list(events)
    by_hash = {e.hash: e for e in ordered}
    expected_prev = GENESIS
    expected_seq = 1
    for count, event in enumerate(ordered, start=1):
        if recompute(event) != event.hash:
            return VerifyResult(
                False,
                count,
                event.seq,
                "edited",
                f"event {event.seq} was edited: its content no longer matches its hash",
            )
        if event.prev_hash != expected_prev:
            if event.seq != expected_seq:
                return VerifyResult(
                    False,
                    count,
                    expected_seq,
                    "deleted",
                    f"event {expected_seq} is missing (deleted); the chain resumes at "
                    f"event {event.seq}",
                )
            earlier = by_hash.get(event.prev_hash)
            if earlier is not None or event.prev_hash == GENESIS:
                where = earlier.seq if earlier is not None else 0
                return VerifyResult(
                    False,
                    count,
                    event.seq,
                    "reordered",
                    f"event {event.seq} is out of order: it follows event {where} "
                    "in the chain, not the event stored before it",
                )
            return VerifyResult(
                False,
                count,
                event.seq,
                "deleted",
                f"event {event.seq} does not link to the event before it: "
                "an event before it was deleted or replaced",
            )
        if event.seq != expected_seq:
            return VerifyResult(
                False,
                count,
                expected_seq,
                "reordered",
                f"event {event.seq} is stored at position {expected_seq}: events were renumbered",
            )
        expected_prev = event.hash
        expected_seq += 1
    checked = len(ordered)
    if head_seq != expected_seq - 1 or head_hash != expected_prev:
        return VerifyResult(
            False,
            checked,
            expected_seq,
            "deleted",
            f"the chain head names event {head_seq} but the last stored event is "
            f"{expected_seq - 1}: events at the end were deleted",
        )
    return VerifyResult(True, checked)
