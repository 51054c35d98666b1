"""SQL of law-enforcement requests; status changes commit with their audit event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, or_, select, update

from safestream.errors import NotFoundError
from safestream.store.models import CaseEventRow, CaseRow, CheckRow, LERequestRow, ReportRow

REQUESTS = cast(Table, LERequestRow.__table__)
CHECKS = cast(Table, CheckRow.__table__)
# Read only here (cases and reports are written by safestream.store.cases).
CASES = cast(Table, CaseRow.__table__)
CASE_EVENTS = cast(Table, CaseEventRow.__table__)
REPORTS = cast(Table, ReportRow.__table__)
#: Shown wherever a request under a non-disclosure order is shown.
NDO_NOTICE = (
    "NON-DISCLOSURE ORDER: do not notify, warn or otherwise tell the user(s) named by "
    "this request, and do not hand them any export, while it is open"
)
#: Request statuses that are still open (mirrors ``requests.model.OPEN_STATUSES``).
OPEN = ("received", "verified", "in_progress")


@dataclass(frozen=True)
class LERequest:
    """A stored law-enforcement request."""

    id: int
    request_type: str
    reference: str
    agency: str
    officer: dict[str, Any]
    verification: str
    legal_basis: str
    jurisdiction: str
    preset: str
    identifiers: list[str]
    data_categories: list[str]
    non_disclosure: bool
    emergency: bool
    received_at: datetime
    deadline_at: datetime
    status: str
    rejection_reason: str | None
    responded_at: datetime | None
    escalations: list[str]
    created_at: datetime
    updated_at: datetime

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-ready dict; with ``now``, the seconds left until the deadline."""
        out: dict[str, Any] = {k: getattr(self, k) for k in LERequest.__dataclass_fields__}
        for k in ("received_at", "deadline_at", "responded_at", "created_at", "updated_at"):
            out[k] = out[k].isoformat() if out[k] is not None else None
        out["non_disclosure_notice"] = NDO_NOTICE if self.non_disclosure else None
        if now is not None:
            out["seconds_left"] = round((self.deadline_at - now).total_seconds(), 3)
            out["overdue"] = self.responded_at is None and now > self.deadline_at
        return out


def _req(row: Any) -> LERequest:
    m = row._mapping
    values = {k: m[k] for k in LERequest.__dataclass_fields__}
    values["identifiers"] = list(values["identifiers"] or [])
    values["data_categories"] = list(values["data_categories"] or [])
    values["escalations"] = list(values["escalations"] or [])
    values["officer"] = dict(values["officer"] or {})
    return LERequest(**values)


def insert_request(conn: Connection, **values: Any) -> int:
    """Insert a request; returns its id."""
    return int(
        conn.execute(insert(REQUESTS).values(**values).returning(REQUESTS.c.id)).scalar_one()
    )


def get_request(conn: Connection, request_id: int, *, lock: bool = False) -> LERequest:
    """One request (row-locked FOR UPDATE on PostgreSQL with ``lock``), or NotFoundError."""
    query = select(REQUESTS).where(REQUESTS.c.id == request_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"no law-enforcement request with id {request_id}")
    return _req(row)


def list_requests(
    conn: Connection, *, statuses: tuple[str, ...] | None = None, limit: int = 100
) -> list[LERequest]:
    """Requests by deadline, soonest first."""
    query = select(REQUESTS).order_by(REQUESTS.c.deadline_at, REQUESTS.c.id).limit(limit)
    if statuses is not None:
        query = query.where(REQUESTS.c.status.in_(statuses))
    return [_req(r) for r in conn.execute(query)]


def all_requests(conn: Connection) -> list[LERequest]:
    """Every request (for statistics)."""
    return [_req(r) for r in conn.execute(select(REQUESTS).order_by(REQUESTS.c.id))]


def update_request(conn: Connection, request_id: int, **values: Any) -> None:
    """Change a request's columns."""
    conn.execute(update(REQUESTS).where(REQUESTS.c.id == request_id).values(**values))


def checks_for(
    conn: Connection, identifiers: list[str], *, limit: int = 10000
) -> list[dict[str, Any]]:
    """Check records naming any identifier (account id, username or IP address)."""
    query = (
        select(CHECKS)
        .where(
            or_(
                CHECKS.c.account_id.in_(identifiers),
                CHECKS.c.username.in_(identifiers),
                CHECKS.c.ip_address.in_(identifiers),
            )
        )
        .order_by(CHECKS.c.received_at, CHECKS.c.id)
        .limit(limit)
    )
    out = []
    for row in conn.execute(query):
        m = row._mapping
        out.append(
            {
                "content_id": m["content_id"],
                "received_at": m["received_at"].isoformat(),
                "account_id": m["account_id"],
                "username": m["username"],
                "profile_url": m["profile_url"],
                "ip_address": m["ip_address"],
                "source_port": m["source_port"],
                "client_timestamp": (
                    m["client_timestamp"].isoformat() if m["client_timestamp"] else None
                ),
                "surface": m["surface"],
                "outcome": m["outcome"],
                "signals": m["signals"],
                "matches": m["matches"],
                "reasons": m["reasons"],
            }
        )
    return out


def open_nondisclosure_identifiers(conn: Connection) -> list[str]:
    """Every identifier named by an open request that carries a non-disclosure order."""
    query = select(REQUESTS.c.identifiers).where(
        REQUESTS.c.status.in_(OPEN), REQUESTS.c.non_disclosure.is_(True)
    )
    return [str(i) for (ids,) in conn.execute(query) for i in (ids or [])]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def cases_for(
    conn: Connection, identifiers: list[str], *, limit: int = 10000
) -> list[dict[str, Any]]:
    """Cases concerning the identifiers, with their detections (read-only).

    A case concerns an identifier when it is the case's account, or when one of
    its detections came from a check naming it (account id, username or IP).
    """
    via_checks = (
        select(CASE_EVENTS.c.case_id)
        .join(CHECKS, CHECKS.c.content_id == CASE_EVENTS.c.content_id)
        .where(
            or_(
                CHECKS.c.account_id.in_(identifiers),
                CHECKS.c.username.in_(identifiers),
                CHECKS.c.ip_address.in_(identifiers),
            )
        )
    )
    query = (
        select(CASES)
        .where(or_(CASES.c.account_id.in_(identifiers), CASES.c.id.in_(via_checks)))
        .order_by(CASES.c.id)
        .limit(limit)
    )
    cases: list[dict[str, Any]] = []
    for row in conn.execute(query):
        m = row._mapping
        cases.append(
            {
                "id": m["id"],
                "account_id": m["account_id"],
                "status": m["status"],
                "first_seen_at": _iso(m["first_seen_at"]),
                "last_seen_at": _iso(m["last_seen_at"]),
                "created_at": _iso(m["created_at"]),
                "reviewed_at": _iso(m["reviewed_at"]),
                "reported_at": _iso(m["reported_at"]),
                "decided_by": m["decided_by"],
                "reason_code": m["reason_code"],
                "decision_note": m["decision_note"],
                "detections": [],
            }
        )
    if cases:
        by_id = {c["id"]: c for c in cases}
        events = (
            select(CASE_EVENTS)
            .where(CASE_EVENTS.c.case_id.in_(list(by_id)))
            .order_by(CASE_EVENTS.c.id)
        )
        for row in conn.execute(events):
            m = row._mapping
            by_id[m["case_id"]]["detections"].append(
                {
                    "content_id": m["content_id"],
                    "kind": m["kind"],
                    "sha256": m["sha256"],
                    "observed_at": _iso(m["observed_at"]),
                    "record": dict(m["record"] or {}),
                }
            )
    return cases


def reports_for(conn: Connection, case_ids: list[int]) -> list[dict[str, Any]]:
    """Stored reports of these cases (read-only), oldest first."""
    if not case_ids:
        return []
    query = select(REPORTS).where(REPORTS.c.case_id.in_(case_ids)).order_by(REPORTS.c.id)
    return [
        {
            "id": m["id"],
            "case_id": m["case_id"],
            "created_by": m["created_by"],
            "created_at": _iso(m["created_at"]),
            "body": dict(m["body"] or {}),
        }
        for m in (row._mapping for row in conn.execute(query))
    ]


__all__ = ["LERequest"]
