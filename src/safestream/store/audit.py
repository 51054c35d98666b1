"""SQL of the audit chain: serialised appends, listing, verification.

Appends are serialised on the one ``audit_head`` row: ``SELECT ... FOR UPDATE``
on PostgreSQL (concurrent appenders queue on the row lock), ``BEGIN IMMEDIATE``
on SQLite (the database's single write lock). Under that lock the appender
reads the last hash, inserts the next event with ``seq = last + 1`` and moves
the head, so two writers can never both link to the same predecessor.

:meth:`AuditRepository.append_in` writes inside a caller's transaction, so an
event and the change it records commit (or roll back) together.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, update

from safestream.errors import InputError
from safestream.evidence.audit import AuditEvent, VerifyResult, event_hash, verify_events
from safestream.store.db import Store
from safestream.store.jobs import write_transaction
from safestream.store.models import AuditEventRow, AuditHeadRow, utcnow

EVENTS = cast(Table, AuditEventRow.__table__)
HEAD = cast(Table, AuditHeadRow.__table__)


def _event(row: Any) -> AuditEvent:
    m = row._mapping
    return AuditEvent(
        seq=int(m["seq"]),
        occurred_at=m["occurred_at"],
        actor=m["actor"],
        action=m["action"],
        object_type=m["object_type"],
        object_id=m["object_id"],
        reason=m["reason"],
        detail=dict(m["detail"] or {}),
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )


class AuditRepository:
    """The append-only, hash-chained audit table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def append(
        self,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        reason: str = "",
        detail: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> AuditEvent:
        """Append one event in its own transaction."""
        with write_transaction(self.store) as conn:
            return self.append_in(
                conn,
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=object_id,
                reason=reason,
                detail=detail,
                now=now,
            )

    def append_in(
        self,
        conn: Connection,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        reason: str = "",
        detail: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> AuditEvent:
        """Append one event inside the caller's (write) transaction."""
        if not actor or not action:
            raise InputError("an audit event needs an actor and an action")
        head = conn.execute(select(HEAD).where(HEAD.c.id == 1).with_for_update()).first()
        if head is None:
            raise InputError("the audit chain head is missing: run the migrations")
        seq = int(head.last_seq) + 1
        # Microseconds are what every backend keeps; hash what will be read back.
        occurred_at = now or utcnow()
        fields: dict[str, Any] = {
            "occurred_at": occurred_at,
            "actor": actor[:200],
            "action": action[:64],
            "object_type": object_type[:64],
            "object_id": str(object_id)[:200],
            "reason": reason,
            "detail": dict(detail or {}),
            "prev_hash": head.last_hash,
        }
        digest = event_hash(**fields)
        conn.execute(insert(EVENTS).values(seq=seq, hash=digest, **fields))
        conn.execute(update(HEAD).where(HEAD.c.id == 1).values(last_seq=seq, last_hash=digest))
        return AuditEvent(seq=seq, hash=digest, **fields)

    def list_events(
        self,
        *,
        limit: int = 100,
        after_seq: int = 0,
        action: str | None = None,
        object_id: str | None = None,
    ) -> list[AuditEvent]:
        """Events in chain order after ``after_seq``, optionally of one action or object."""
        query = select(EVENTS).where(EVENTS.c.seq > after_seq).order_by(EVENTS.c.seq).limit(limit)
        if action is not None:
            query = query.where(EVENTS.c.action == action)
        if object_id is not None:
            query = query.where(EVENTS.c.object_id == object_id)
        with self.store.engine.connect() as conn:
            return [_event(r) for r in conn.execute(query)]

    def _all(self, conn: Connection) -> Iterator[AuditEvent]:
        for row in conn.execute(select(EVENTS).order_by(EVENTS.c.seq)).yield_per(1000):
            yield _event(row)

    def verify(self) -> VerifyResult:
        """Verify the whole chain against its head (one consistent read)."""
        with self.store.engine.connect() as conn, conn.begin():
            head = conn.execute(select(HEAD).where(HEAD.c.id == 1)).first()
            head_seq = int(head.last_seq) if head is not None else 0
            head_hash = str(head.last_hash) if head is not None else ""
            return verify_events(self._all(conn), head_seq=head_seq, head_hash=head_hash)


__all__ = ["AuditRepository"]
