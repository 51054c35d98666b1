"""SQL of cases, their detections and reports.

Detections come from the check records: :meth:`CaseRepository.ingest` reads the
checks after a cursor (kept in ``store_meta``), so each check is considered
once, even with many workers: ingestion is serialised by an advisory lock on
PostgreSQL and by the write lock (``BEGIN IMMEDIATE``) on SQLite, and
``case_events.content_id`` is unique besides.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, text, update

from safestream.cases.model import (
    OPEN_STATUSES,
    Case,
    CaseConfig,
    CaseEvent,
    CaseStatus,
    check_transition,
    detection_kind,
)
from safestream.errors import ConflictError, NotFoundError
from safestream.store.audit import AuditRepository
from safestream.store.db import Store
from safestream.store.jobs import write_transaction
from safestream.store.models import (
    CaseEventRow,
    CaseRow,
    CheckRow,
    ReportRow,
    StoreMetaRow,
    utcnow,
)

CASES = cast(Table, CaseRow.__table__)
EVENTS = cast(Table, CaseEventRow.__table__)
CHECKS = cast(Table, CheckRow.__table__)
REPORTS = cast(Table, ReportRow.__table__)
META = cast(Table, StoreMetaRow.__table__)
CURSOR_KEY = "cases.check_cursor"


def _check_record(m: Any) -> dict[str, Any]:
    signals = dict(m["signals"] or {})
    return {
        "received_at": m["received_at"].isoformat(),
        "context": {
            "account_id": m["account_id"],
            "username": m["username"],
            "profile_url": m["profile_url"],
            "ip_address": m["ip_address"],
            "source_port": m["source_port"],
            "client_timestamp": (
                m["client_timestamp"].isoformat() if m["client_timestamp"] else None
            ),
            "surface": m["surface"],
        },
        "outcome": m["outcome"],
        "hashes": {k: signals.get(k) for k in ("md5", "sha1", "sha256", "pdq")},
        "matches": list(m["matches"] or []),
        "scores": m["scores"],
    }


def _event(m: Any) -> CaseEvent:
    return CaseEvent(
        content_id=m["content_id"],
        kind=m["kind"],
        sha256=m["sha256"],
        observed_at=m["observed_at"],
        record=dict(m["record"]),
    )


class CaseRepository:
    """Cases: ingestion from check records, listing, workflow moves, reports."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- ingestion -------------------------------------------------------------

    def ingest(self, config: CaseConfig, *, limit: int = 1000) -> tuple[int, int]:
        """Group up to ``limit`` new check records into cases.

        Returns (detections added, check records read); fewer read than
        ``limit`` means the cursor has caught up.
        """
        added = 0
        with write_transaction(self.store) as conn:
            if self.store.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('safestream.cases'))"))
            raw = conn.execute(select(META.c.value).where(META.c.key == CURSOR_KEY)).scalar()
            cursor = int(raw) if raw is not None else 0
            rows = conn.execute(
                select(CHECKS).where(CHECKS.c.id > cursor).order_by(CHECKS.c.id).limit(limit)
            ).all()
            for row in rows:
                m = row._mapping
                cursor = int(m["id"])
                kind = detection_kind(
                    outcome=m["outcome"],
                    surface=m["surface"],
                    scores=m["scores"],
                    threshold=config.classifier_threshold,
                )
                if kind is None:
                    continue
                if conn.execute(
                    select(EVENTS.c.id).where(EVENTS.c.content_id == m["content_id"])
                ).first():
                    continue
                self._add_event(conn, m, kind.value, config)
                added += 1
            if raw is None:
                conn.execute(insert(META).values(key=CURSOR_KEY, value=str(cursor)))
            else:
                conn.execute(update(META).where(META.c.key == CURSOR_KEY).values(value=str(cursor)))
        return added, len(rows)

    def _add_event(self, conn: Connection, m: Any, kind: str, config: CaseConfig) -> None:
        observed: datetime = m["received_at"]
        account = m["account_id"]
        case_id: int | None = None
        last_seen: datetime | None = None
        if account is not None:
            found = conn.execute(
                select(CASES.c.id, CASES.c.last_seen_at)
                .where(
                    CASES.c.account_id == account,
                    CASES.c.status.in_([s.value for s in OPEN_STATUSES]),
                    CASES.c.last_seen_at >= observed - timedelta(seconds=config.window_s),
                )
                .order_by(CASES.c.last_seen_at.desc())
                .limit(1)
            ).first()
            if found is not None:
                case_id, last_seen = int(found[0]), found[1]
        now = utcnow()
        if case_id is None:
            case_id = conn.execute(
                insert(CASES)
                .values(
                    account_id=account,
                    status=CaseStatus.NEW.value,
                    first_seen_at=observed,
                    last_seen_at=observed,
                    created_at=now,
                    updated_at=now,
                )
                .returning(CASES.c.id)
            ).scalar_one()
        else:
            conn.execute(
                update(CASES)
                .where(CASES.c.id == case_id)
                .values(
                    last_seen_at=max(observed, last_seen or observed),
                    updated_at=now,
                )
            )
        record = _check_record(m)
        conn.execute(
            insert(EVENTS).values(
                case_id=case_id,
                content_id=m["content_id"],
                kind=kind,
                sha256=record["hashes"]["sha256"],
                observed_at=observed,
                record=record,
            )
        )

    # -- reading ---------------------------------------------------------------

    def _load(self, conn: Connection, rows: list[Any]) -> list[Case]:
        if not rows:
            return []
        ids = [r._mapping["id"] for r in rows]
        events: dict[int, list[CaseEvent]] = {i: [] for i in ids}
        for e in conn.execute(
            select(EVENTS).where(EVENTS.c.case_id.in_(ids)).order_by(EVENTS.c.id)
        ):
            events[e._mapping["case_id"]].append(_event(e._mapping))
        accounts = {r._mapping["account_id"] for r in rows} - {None}
        prior: dict[str, int] = {}
        if accounts:
            for account, n in conn.execute(
                select(CASES.c.account_id, func.count())
                .where(
                    CASES.c.account_id.in_(sorted(accounts)),
                    CASES.c.status == CaseStatus.REPORTED.value,
                )
                .group_by(CASES.c.account_id)
            ):
                prior[account] = int(n)
        out = []
        for r in rows:
            m = r._mapping
            own = 1 if m["status"] == CaseStatus.REPORTED.value else 0
            out.append(
                Case(
                    id=m["id"],
                    account_id=m["account_id"],
                    status=m["status"],
                    first_seen_at=m["first_seen_at"],
                    last_seen_at=m["last_seen_at"],
                    created_at=m["created_at"],
                    reviewed_at=m["reviewed_at"],
                    reported_at=m["reported_at"],
                    decided_by=m["decided_by"],
                    reason_code=m["reason_code"],
                    decision_note=m["decision_note"],
                    events=tuple(events[m["id"]]),
                    prior_reports=prior.get(m["account_id"], 0) - own,
                )
            )
        return out

    def get(self, case_id: int) -> Case:
        """One case with its detections."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(CASES).where(CASES.c.id == case_id)).first()
            if row is None:
                raise NotFoundError(f"no case with id {case_id}")
            return self._load(conn, [row])[0]

    def list(
        self, *, status: str | None = None, account_id: str | None = None, limit: int = 100
    ) -> list[Case]:
        """Cases, most recently active first (the caller sorts by priority)."""
        query = select(CASES).order_by(CASES.c.last_seen_at.desc(), CASES.c.id.desc())
        if status is not None:
            query = query.where(CASES.c.status == status)
        if account_id is not None:
            query = query.where(CASES.c.account_id == account_id)
        with self.store.engine.connect() as conn:
            return self._load(conn, list(conn.execute(query.limit(limit))))

    # -- workflow --------------------------------------------------------------

    def transition(
        self,
        case_id: int,
        target: str,
        *,
        reason_code: str,
        note: str,
        actor: str,
        detail: dict[str, Any] | None = None,
    ) -> Case:
        """Move a case along the workflow; the decision is audited in the same transaction."""
        with write_transaction(self.store) as conn:
            current = conn.execute(
                select(CASES.c.status).where(CASES.c.id == case_id).with_for_update()
            ).scalar()
            if current is None:
                raise NotFoundError(f"no case with id {case_id}")
            to = check_transition(current, target, reason_code)
            now = utcnow()
            values: dict[str, Any] = {
                "status": to.value,
                "updated_at": now,
                "decided_by": actor[:200],
                "reason_code": reason_code,
                "decision_note": note,
            }
            if to in (CaseStatus.CONFIRMED, CaseStatus.DISMISSED):
                values["reviewed_at"] = now
            if to is CaseStatus.REPORTED:
                values["reported_at"] = now
            done = conn.execute(
                update(CASES)
                .where(CASES.c.id == case_id, CASES.c.status == current)
                .values(**values)
            )
            if not getattr(done, "rowcount", 1):
                raise ConflictError(f"case {case_id} changed meanwhile; reload and decide again")
            AuditRepository(self.store).append_in(
                conn,
                actor=actor,
                action=f"case.{to.value}",
                object_type="case",
                object_id=str(case_id),
                reason=note,
                detail={"from": current, "to": to.value, "reason_code": reason_code}
                | (detail or {}),
            )
        return self.get(case_id)

    # -- reports ---------------------------------------------------------------

    def add_report(self, case_id: int, body: dict[str, Any], *, actor: str) -> int:
        """Store a built report (audited); return its id."""
        with write_transaction(self.store) as conn:
            report_id = int(
                conn.execute(
                    insert(REPORTS)
                    .values(case_id=case_id, body=body, created_by=actor[:200], created_at=utcnow())
                    .returning(REPORTS.c.id)
                ).scalar_one()
            )
            AuditRepository(self.store).append_in(
                conn,
                actor=actor,
                action="report.build",
                object_type="report",
                object_id=str(report_id),
                reason=f"built from case {case_id}",
                detail={"case_id": case_id},
            )
        return report_id

    def get_report(self, report_id: int) -> tuple[int, dict[str, Any]]:
        """A stored report: (case id, body)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(REPORTS).where(REPORTS.c.id == report_id)).first()
        if row is None:
            raise NotFoundError(f"no report with id {report_id}")
        return int(row._mapping["case_id"]), dict(row._mapping["body"])


__all__ = ["CaseRepository"]
