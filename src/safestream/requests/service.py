"""Law-enforcement requests: intake, workflow, escalation and SLA statistics.

Deadlines are stored as absolute UTC instants computed at intake, so they
survive restarts and do not depend on the server's time zone. Escalations
already fired are stored on the request, so each fires once even when the
escalation sweep runs in several processes or after a restart (the request
row is locked while it is escalated).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from safestream.actions.webhook import JOB_KIND as WEBHOOK_JOB_KIND
from safestream.actions.webhook import WebhookConfig
from safestream.errors import InputError
from safestream.requests.model import (
    OPEN_STATUSES,
    DeadlineStandards,
    NewRequest,
    Status,
    Verification,
    check_transition,
    escalation_level,
    is_emergency,
)
from safestream.requests.nondisclosure import nondisclosure_applies
from safestream.store import lerequests as sql
from safestream.store.audit import AuditRepository
from safestream.store.db import Store
from safestream.store.jobs import JobRepository, write_transaction
from safestream.store.lerequests import LERequest
from safestream.store.models import utcnow

Clock = Callable[[], datetime]
#: The ``event`` of escalation webhooks.
EVENT_ESCALATION = "le_request.escalation"


class RequestService:
    """Intake, workflow, escalation and statistics of law-enforcement requests."""

    def __init__(
        self,
        store: Store,
        *,
        standards: DeadlineStandards | None = None,
        webhook: WebhookConfig | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.standards = standards or DeadlineStandards()
        self.webhook = webhook
        self.clock = clock
        self.audit = AuditRepository(store)
        self.jobs = JobRepository(store)

    def create(self, new: NewRequest, *, actor: str) -> LERequest:
        """Record a request and its deadline (audited)."""
        preset = self.standards.preset_for(new.jurisdiction, new.preset)
        emergency = is_emergency(new.request_type) if new.emergency is None else new.emergency
        deadline = self.standards.deadline(new.received_at, emergency=emergency, preset=preset)
        now = self.clock()
        with write_transaction(self.store) as conn:
            request_id = sql.insert_request(
                conn,
                request_type=new.request_type.value,
                reference=new.reference,
                agency=new.agency,
                officer=new.officer,
                verification=new.verification.value,
                legal_basis=new.legal_basis,
                jurisdiction=new.jurisdiction,
                preset=preset,
                identifiers=list(new.identifiers),
                data_categories=list(new.data_categories),
                non_disclosure=new.non_disclosure,
                emergency=emergency,
                received_at=new.received_at,
                deadline_at=deadline,
                status=Status.RECEIVED.value,
                escalations=[],
                created_at=now,
                updated_at=now,
            )
            self.audit.append_in(
                conn,
                actor=actor,
                action="request.received",
                object_type="le_request",
                object_id=str(request_id),
                reason=new.legal_basis,
                detail={
                    "type": new.request_type.value,
                    "deadline_at": deadline.isoformat(),
                    "preset": preset,
                },
                now=now,
            )
            return sql.get_request(conn, request_id)

    def get(self, request_id: int) -> LERequest:
        """One request."""
        with self.store.engine.connect() as conn:
            return sql.get_request(conn, request_id)

    def list_requests(self, *, open_only: bool = False, limit: int = 100) -> list[LERequest]:
        """Requests, soonest deadline first."""
        statuses = tuple(s.value for s in OPEN_STATUSES) if open_only else None
        with self.store.engine.connect() as conn:
            return sql.list_requests(conn, statuses=statuses, limit=limit)

    def transition(
        self,
        request_id: int,
        target: Status,
        *,
        actor: str,
        reason: str | None = None,
        verification: Verification | None = None,
    ) -> LERequest:
        """Move a request along the workflow; invalid moves raise ConflictError."""
        now = self.clock()
        with write_transaction(self.store) as conn:
            current = sql.get_request(conn, request_id, lock=True)
            check_transition(Status(current.status), target, reason)
            values: dict[str, Any] = {"status": target.value, "updated_at": now}
            if target == Status.VERIFIED:
                values["verification"] = (verification or Verification.VERIFIED).value
            elif verification is not None:
                values["verification"] = verification.value
            if target == Status.REJECTED:
                values["rejection_reason"] = reason
            if target in (Status.RESPONDED, Status.REJECTED):
                values["responded_at"] = now
            sql.update_request(conn, request_id, **values)
            self.audit.append_in(
                conn,
                actor=actor,
                action="request.status",
                object_type="le_request",
                object_id=str(request_id),
                reason=reason or "",
                detail={"from": current.status, "to": target.value},
                now=now,
            )
            return sql.get_request(conn, request_id)

    def nondisclosure_applies(self, identifiers: Iterable[str | None]) -> bool:
        """True when an open request under a non-disclosure order names any identifier.

        Every place that could tell a user (a ``warn`` action, a notification,
        an export for the user) asks this first and stays silent when it is True.
        """
        return nondisclosure_applies(self.store, identifiers)

    def set_nondisclosure(
        self, request_id: int, value: bool, *, actor: str, reason: str | None = None
    ) -> LERequest:
        """Set or clear a request's non-disclosure flag (audited); clearing needs a reason."""
        why = (reason or "").strip()
        if not value and len(why) < 3:
            raise InputError(
                "clearing a non-disclosure order needs a reason (at least 3 characters), "
                "e.g. the court order that lifted it"
            )
        now = self.clock()
        with write_transaction(self.store) as conn:
            current = sql.get_request(conn, request_id, lock=True)
            if current.non_disclosure == value:
                return current  # nothing changes, nothing to audit
            sql.update_request(conn, request_id, non_disclosure=value, updated_at=now)
            self.audit.append_in(
                conn,
                actor=actor,
                action="request.nondisclosure_set" if value else "request.nondisclosure_cleared",
                object_type="le_request",
                object_id=str(request_id),
                reason=why,
                detail={"from": current.non_disclosure, "to": value},
                now=now,
            )
            return sql.get_request(conn, request_id)

    def escalate_due(self, *, actor: str = "system:escalation") -> list[dict[str, Any]]:
        """Fire due escalations of open requests (audit + webhook job); returns what fired.

        The webhook job is enqueued *before* the escalation is marked fired, under
        an idempotency key per request and level: a crash in between enqueues
        it again on the next sweep, deduplicated by the key (at least once,
        never lost, never twice in the queue).
        """
        now = self.clock()
        fired: list[dict[str, Any]] = []
        open_values = {s.value for s in OPEN_STATUSES}
        for request in self.list_requests(open_only=True, limit=100000):
            levels = escalation_level(
                request.received_at, request.deadline_at, now, self.standards.escalate_at
            )
            new = [lv for lv in levels if lv not in request.escalations]
            if not new:
                continue
            level = new[-1]  # the most severe level reached: one alert, not a burst
            seconds_left = round((request.deadline_at - now).total_seconds(), 3)
            key = f"le-escalation-{request.id}-{level}"
            job_id = None
            if self.webhook is not None:
                payload = {
                    "event": EVENT_ESCALATION,
                    "delivery_id": key,
                    "request_id": request.id,
                    "level": level,
                    "status": request.status,
                    "request_type": request.request_type,
                    "agency": request.agency,
                    "deadline_at": request.deadline_at.isoformat(),
                    "seconds_left": seconds_left,
                }
                job, _ = self.jobs.enqueue(
                    WEBHOOK_JOB_KIND,
                    payload,
                    idempotency_key=key,
                    max_attempts=self.webhook.max_attempts,
                )
                job_id = job.id
            with write_transaction(self.store) as conn:
                current = sql.get_request(conn, request.id, lock=True)
                if level in current.escalations or current.status not in open_values:
                    continue  # another sweep fired it meanwhile
                marked = [
                    *current.escalations,
                    *(lv for lv in new if lv not in current.escalations),
                ]
                sql.update_request(conn, request.id, escalations=marked, updated_at=now)
                self.audit.append_in(
                    conn,
                    actor=actor,
                    action="request.escalation",
                    object_type="le_request",
                    object_id=str(request.id),
                    reason=f"escalation level {level}",
                    detail={"level": level, "seconds_left": seconds_left, "job_id": job_id},
                    now=now,
                )
            fired.append({"request_id": request.id, "level": level, "job_id": job_id})
        return fired

    def sla(self) -> dict[str, Any]:
        """Open requests by time left, share answered within deadline, median time to respond."""
        now = self.clock()
        with self.store.engine.connect() as conn:
            requests = sql.all_requests(conn)
        buckets = {"overdue": 0, "under_1h": 0, "under_6h": 0, "under_24h": 0, "24h_or_more": 0}
        open_count = 0
        durations: list[float] = []
        in_time = 0
        responded = 0
        for r in requests:
            if r.status in {s.value for s in OPEN_STATUSES}:
                open_count += 1
                left_h = (r.deadline_at - now).total_seconds() / 3600
                key = (
                    "overdue"
                    if left_h <= 0
                    else "under_1h"
                    if left_h < 1
                    else "under_6h"
                    if left_h < 6
                    else "under_24h"
                    if left_h < 24
                    else "24h_or_more"
                )
                buckets[key] += 1
            elif r.status == Status.RESPONDED.value and r.responded_at is not None:
                responded += 1
                durations.append((r.responded_at - r.received_at).total_seconds())
                if r.responded_at <= r.deadline_at:
                    in_time += 1
        return {
            "as_of": now.isoformat(),
            "open": open_count,
            "open_by_time_left": buckets,
            "responded": responded,
            "answered_within_deadline_share": (in_time / responded) if responded else None,
            "median_time_to_respond_hours": (
                statistics.median(durations) / 3600 if durations else None
            ),
        }
