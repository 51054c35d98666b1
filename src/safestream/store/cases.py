"""SQL of cases, their detections and reports.

Detections come from the check records: :meth:`CaseRepository.ingest` reads the
checks after a cursor (kept in ``store_meta``), so each check is considered
once, even with many workers: ingestion is serialised by an advisory lock on
PostgreSQL and by the write lock (``BEGIN IMMEDIATE``) on SQLite, and
``case_events.content_id`` is unique besides.

On PostgreSQL ids are taken at insert, not at commit: a check record with id 10
can commit after id 11 was read and the cursor moved past it. Ids skipped over
are therefore kept as *gaps* (in ``store_meta`` too, so every process shares
them) and looked up again at each ingestion until they appear. A gap that never
fills (a rolled-back insert leaves a hole for ever) is dropped:

- on PostgreSQL, as soon as no transaction that could hold its id is left,
  however long one runs. At the first ingestion at which the gap is at least
  ``GAP_MIN_AGE_S`` old, a fresh transaction id X is taken
  (:func:`safestream.store.db.fresh_xid`). Transaction ids are handed out in
  increasing order, and the holder of the missing id had its own by then: it
  gets one at the latest when it writes the row that takes the check id (the
  age is the margin for that), so its id is below X. The gap is dropped at a
  later ingestion when the snapshot's xmin -- the oldest transaction still
  running, read *before* the gaps are looked up -- is at least X: every
  transaction below X has ended, and the lookup after saw what they committed.
- on SQLite, which serialises writers so that holes come only from deleted
  rows, and for gaps stored by an earlier version (``{id: iso}``, without X),
  ``GAP_TTL_S`` after it was noticed.

The approach of :meth:`safestream.engine.matcher.Matcher.refresh`.
"""

from __future__ import annotations

import builtins
import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, case, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

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
from safestream.store.db import Store, fresh_xid, snapshot_xids
from safestream.store.jobs import write_transaction
from safestream.store.models import (
    CaseEventRow,
    CaseRow,
    CheckRow,
    ReportExchangeRow,
    ReportRow,
    ReportSubmissionRow,
    StoreMetaRow,
    utcnow,
)

CASES = cast(Table, CaseRow.__table__)
EVENTS = cast(Table, CaseEventRow.__table__)
CHECKS = cast(Table, CheckRow.__table__)
REPORTS = cast(Table, ReportRow.__table__)
META = cast(Table, StoreMetaRow.__table__)
CURSOR_KEY = "cases.check_cursor"
#: Skipped check ids, looked up again at each ingestion (JSON: id -> ``{"noticed_at": iso,
#: "xid_bound": X or null}``; an earlier version wrote id -> iso, still read).
GAPS_KEY = "cases.check_gaps"
#: SQLite, and gaps without a transaction-id bound: how long a skipped check id is
#: looked for before it is taken as rolled back (seconds).
GAP_TTL_S = 600.0
#: PostgreSQL: how old a gap must be before its transaction-id bound is taken, the
#: margin for a transaction between taking an id and getting its own (seconds).
GAP_MIN_AGE_S = 5.0
#: At most this many skipped ids are tracked (the newest are kept).
MAX_GAPS = 10_000


@dataclass(frozen=True)
class _Gap:
    """A skipped check id: when it was noticed, and the bound that settles it on PostgreSQL."""

    noticed_at: datetime
    #: A transaction id above that of any transaction that could hold the id (None until taken).
    xid_bound: int | None = None
    #: Stored by an earlier version (``{id: iso}``): it expires by ``GAP_TTL_S`` only.
    legacy: bool = False


def _gap_settled(gap: _Gap, now: datetime, xmin: int | None) -> bool:
    """Whether a gap still missing after the lookup can be dropped.

    ``xmin`` is the snapshot's oldest running transaction read before the
    lookup, None on SQLite.
    """
    age_s = (now - gap.noticed_at).total_seconds()
    if xmin is None or gap.legacy:
        return age_s > GAP_TTL_S
    return gap.xid_bound is not None and xmin >= gap.xid_bound and age_s >= GAP_MIN_AGE_S


def _check_record(m: Any) -> dict[str, Any]:
    signals = dict(m["signals"] or {})
    out: dict[str, Any] = {
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
        "reasons": list(m["reasons"] or []),
    }
    live = signals.get("live")
    if isinstance(live, dict):
        # A live-monitor detection: the stream and when in it (see safestream.live.cases).
        out["live"] = {
            k: live.get(k)
            for k in ("stream_id", "stream_started_at", "detected_at", "sample_times_s", "verdict")
        }
    if signals.get("scan_path"):
        # A batch-scan detection: where the reviewer finds the file.
        out["file"] = {"path": signals["scan_path"], "scan_job_id": signals.get("scan_job_id")}
    return out


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

        Returns (detections added, check records read after the cursor); fewer
        read than ``limit`` means the cursor has caught up. Check records that
        committed late (below the cursor, in a remembered gap) are grouped too.
        """
        added = 0
        with write_transaction(self.store) as conn:
            if self.store.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('safestream.cases'))"))
            raw = conn.execute(select(META.c.value).where(META.c.key == CURSOR_KEY)).scalar()
            cursor = int(raw) if raw is not None else 0
            gaps = self._read_gaps(conn)
            now = utcnow()
            # The oldest running transaction is read BEFORE the gaps are looked up
            # (READ COMMITTED: each statement sees what committed before it), so a
            # holder of a missing id still runs here or is seen by the lookup. In
            # the other order, one that commits between the two statements would
            # be missed by the lookup and no longer hold xmin back: a lost record.
            snapshot = snapshot_xids(conn) if gaps else None
            xmin = snapshot[0] if snapshot is not None else None
            late: list[Any] = []
            ids = sorted(gaps)
            for start in range(0, len(ids), 1000):
                late.extend(
                    conn.execute(
                        select(CHECKS)
                        .where(CHECKS.c.id.in_(ids[start : start + 1000]))
                        .order_by(CHECKS.c.id)
                    ).all()
                )
            for row in late:
                gaps.pop(int(row._mapping["id"]), None)
                added += self._consider(conn, row._mapping, config)
            gaps = {i: g for i, g in gaps.items() if not _gap_settled(g, now, xmin)}
            rows = conn.execute(
                select(CHECKS).where(CHECKS.c.id > cursor).order_by(CHECKS.c.id).limit(limit)
            ).all()
            noticed = _Gap(utcnow())  # after the read: no earlier than the ids were taken
            for row in rows:
                m = row._mapping
                row_id = int(m["id"])
                for missing in range(max(cursor + 1, row_id - MAX_GAPS), row_id):
                    gaps.setdefault(missing, noticed)
                cursor = max(cursor, row_id)
                added += self._consider(conn, m, config)
            if len(gaps) > MAX_GAPS:
                gaps = dict(sorted(gaps.items())[-MAX_GAPS:])
            if self.store.dialect == "postgresql":
                self._bound_gaps(gaps)
            self._write_meta(conn, CURSOR_KEY, str(cursor), exists=raw is not None)
            self._write_gaps(conn, gaps)
        return added, len(rows)

    def pending_gaps(self) -> builtins.list[int]:
        """Check ids skipped over and still looked for (oldest first)."""
        with self.store.engine.connect() as conn:
            return sorted(self._read_gaps(conn))

    def _consider(self, conn: Connection, m: Any, config: CaseConfig) -> int:
        """Group one check record when it is a detection not grouped yet; 1 if added."""
        kind = detection_kind(
            outcome=m["outcome"],
            surface=m["surface"],
            scores=m["scores"],
            threshold=config.classifier_threshold,
        )
        if kind is None:
            return 0
        if conn.execute(select(EVENTS.c.id).where(EVENTS.c.content_id == m["content_id"])).first():
            return 0
        self._add_event(conn, m, kind.value, config)
        return 1

    def _bound_gaps(self, gaps: dict[int, _Gap]) -> None:
        """Give the gaps at least ``GAP_MIN_AGE_S`` old a transaction-id bound (PostgreSQL)."""
        now = utcnow()
        due = [
            i
            for i, g in gaps.items()
            if g.xid_bound is None
            and not g.legacy
            and (now - g.noticed_at).total_seconds() >= GAP_MIN_AGE_S
        ]
        if not due:
            return
        # A transaction of its own: this one may have taken its id (inserting the
        # events above) before the holder of a missing id took its own.
        bound = fresh_xid(self.store.engine)
        for i in due:
            gaps[i] = replace(gaps[i], xid_bound=bound)

    @staticmethod
    def _read_gaps(conn: Connection) -> dict[int, _Gap]:
        raw = conn.execute(select(META.c.value).where(META.c.key == GAPS_KEY)).scalar()
        if not raw:
            return {}
        try:
            gaps: dict[int, _Gap] = {}
            for k, v in dict(json.loads(raw)).items():
                if isinstance(v, str):  # the format of an earlier version: id -> iso
                    gaps[int(k)] = _Gap(datetime.fromisoformat(v).astimezone(UTC), legacy=True)
                    continue
                bound = v["xid_bound"]
                gaps[int(k)] = _Gap(
                    datetime.fromisoformat(v["noticed_at"]).astimezone(UTC),
                    xid_bound=None if bound is None else int(bound),
                )
            return gaps
        except (ValueError, TypeError, KeyError):  # damaged: start afresh, keep ingesting
            return {}

    @staticmethod
    def _write_meta(conn: Connection, key: str, value: str, *, exists: bool) -> None:
        if exists:
            conn.execute(update(META).where(META.c.key == key).values(value=value))
        else:
            conn.execute(insert(META).values(key=key, value=value))

    def _write_gaps(self, conn: Connection, gaps: dict[int, _Gap]) -> None:
        value = json.dumps(
            {
                str(k): (
                    g.noticed_at.isoformat()  # kept as it was read: it has no bound
                    if g.legacy
                    else {"noticed_at": g.noticed_at.isoformat(), "xid_bound": g.xid_bound}
                )
                for k, g in sorted(gaps.items())
            }
        )
        exists = conn.execute(select(META.c.key).where(META.c.key == GAPS_KEY)).first()
        if exists is None and not gaps:
            return
        self._write_meta(conn, GAPS_KEY, value, exists=exists is not None)

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
            if m["account_id"] is None:
                own = 0  # no account: no prior reports (and never -1)
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

    def ranked(
        self,
        score: Callable[[RankInputs], int],
        *,
        status: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Case]:
        """The ``limit`` cases with the highest ``score`` (ties: newest id first), loaded.

        Every case of ``status`` (or every case) is ranked, however many there
        are: one query computes per case what the priority needs (kinds,
        distinct files, last detection, prior reports on the account) in the
        database, and its rows are streamed through a bounded heap, so memory
        holds ``limit`` cases whatever the table's size, and no event is
        loaded except those of the cases returned.
        """
        kinds = {
            kind: func.max(case((EVENTS.c.kind == kind, 1), else_=0)).label(f"has_{kind}")
            for kind in ("live", "new", "known")
        }
        # Files are events deduplicated by SHA-256; an event without one is a
        # file of its own (content ids are unique).
        files = (
            func.count(func.distinct(EVENTS.c.sha256))
            + func.coalesce(func.sum(case((EVENTS.c.sha256.is_(None), 1), else_=0)), 0)
        ).label("files")
        reported = (
            select(CASES.c.account_id, func.count().label("n"))
            .where(CASES.c.status == CaseStatus.REPORTED.value, CASES.c.account_id.is_not(None))
            .group_by(CASES.c.account_id)
            .subquery("reported")
        )
        query = (
            select(
                CASES.c.id,
                CASES.c.status,
                CASES.c.account_id,
                CASES.c.last_seen_at,
                *kinds.values(),
                files,
                func.max(func.coalesce(reported.c.n, 0)).label("reported"),
            )
            .select_from(
                CASES.outerjoin(EVENTS, EVENTS.c.case_id == CASES.c.id).outerjoin(
                    reported, reported.c.account_id == CASES.c.account_id
                )
            )
            .group_by(CASES.c.id, CASES.c.status, CASES.c.account_id, CASES.c.last_seen_at)
        )
        if status is not None:
            query = query.where(CASES.c.status == status)
        heap: list[tuple[int, int]] = []
        with self.store.engine.connect() as conn:
            for row in conn.execution_options(yield_per=5000).execute(query):
                m = row._mapping
                own = (
                    1
                    if m["status"] == CaseStatus.REPORTED.value and m["account_id"] is not None
                    else 0
                )
                inputs = RankInputs(
                    kinds=frozenset(k for k, col in kinds.items() if m[col.name]),
                    distinct_files=int(m["files"] or 0),
                    last_seen_at=m["last_seen_at"],
                    prior_reports=int(m["reported"] or 0) - own,
                )
                item = (score(inputs), int(m["id"]))
                if len(heap) < limit:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
            ids = [i for _, i in sorted(heap, reverse=True)]
            if not ids:
                return []
            rows = {
                int(r._mapping["id"]): r
                for r in conn.execute(select(CASES).where(CASES.c.id.in_(ids)))
            }
            return self._load(conn, [rows[i] for i in ids if i in rows])

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

    def amend_report(
        self,
        report_id: int,
        amend: Callable[[dict[str, Any]], tuple[dict[str, Any], builtins.list[str]]],
        *,
        actor: str,
    ) -> tuple[int, dict[str, Any], builtins.list[str]]:
        """Replace a stored report's body; (case id, new body, fields changed).

        ``amend(body)`` returns the new body and the top-level fields it changed
        (nothing is written when none changed).

        Refused (ConflictError) once the report is filed or being filed: a
        submission that sent ``/submit`` or finished, a run holding the
        submission, or a case already ``reported``. The check and the write
        share one transaction, under the same per-report lock a submission
        takes to claim the report, so an edit never slips into a running
        submission. ``amend`` may raise (e.g. InputError): nothing is written.
        The audit records the top-level fields changed, never their contents.
        """
        with write_transaction(self.store) as conn:
            if self.store.dialect == "postgresql":
                _report_lock(conn, report_id)
            row = conn.execute(
                select(REPORTS).where(REPORTS.c.id == report_id).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"no report with id {report_id}")
            case_id = int(row._mapping["case_id"])
            sub = conn.execute(
                select(SUBMISSIONS).where(SUBMISSIONS.c.report_id == report_id)
            ).first()
            if sub is not None:
                m = sub._mapping
                if m["status"] == "finished":
                    raise ConflictError(
                        f"report {report_id} was filed (hotline report id "
                        f"{m['remote_report_id']}); a filed report cannot be edited"
                    )
                if m["remote_report_id"] is not None or m["status"] == "in_progress":
                    raise ConflictError(
                        f"report {report_id} is being filed (hotline report id "
                        f"{m['remote_report_id']}); it cannot be edited until the submission "
                        "is finished or retracted"
                    )
                until = m["claimed_until"]
                if until is not None and until > utcnow():
                    raise ConflictError(
                        f"report {report_id} is being submitted by {m['claimed_by']}; "
                        "wait for the run to end and try again"
                    )
            status = conn.execute(select(CASES.c.status).where(CASES.c.id == case_id)).scalar()
            if status == CaseStatus.REPORTED.value:
                raise ConflictError(
                    f"report {report_id}'s case {case_id} is already reported; a submitted "
                    "report cannot be edited (build a new report of the case instead)"
                )
            new, changed = amend(dict(row._mapping["body"]))
            if changed:
                conn.execute(update(REPORTS).where(REPORTS.c.id == report_id).values(body=new))
                AuditRepository(self.store).append_in(
                    conn,
                    actor=actor,
                    action="report.amend",
                    object_type="report",
                    object_id=str(report_id),
                    reason=f"edited fields: {', '.join(changed)}",
                    detail={"case_id": case_id, "fields": changed},
                )
        return case_id, new, changed

    def get_report(self, report_id: int) -> tuple[int, dict[str, Any]]:
        """A stored report: (case id, body)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(REPORTS).where(REPORTS.c.id == report_id)).first()
        if row is None:
            raise NotFoundError(f"no report with id {report_id}")
        return int(row._mapping["case_id"]), dict(row._mapping["body"])


# -- CyberTipline submissions (migration 0009) -------------------------------------

SUBMISSIONS = cast(Table, ReportSubmissionRow.__table__)
EXCHANGES = cast(Table, ReportExchangeRow.__table__)


def _report_lock(conn: Connection, report_id: int) -> None:
    """PostgreSQL: the per-report lock shared by edits and submission claims (transaction)."""
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('safestream.report:' || CAST(:id AS text)))"),
        {"id": report_id},
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class RankInputs:
    """What a case's priority is computed from (see :meth:`CaseRepository.ranked`)."""

    kinds: frozenset[str]
    distinct_files: int
    last_seen_at: datetime
    prior_reports: int


@dataclass(frozen=True)
class SubmissionState:
    """A report's submission: remote id, finished steps, status."""

    report_id: int
    status: str
    remote_report_id: str | None
    steps: dict[str, Any]
    retracted: list[str]
    attempts: int
    claimed_by: str | None
    claimed_until: datetime | None
    submitted_at: datetime | None
    finished_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "report_id": self.report_id,
            "status": self.status,
            "remote_report_id": self.remote_report_id,
            "files": {k: dict(v) for k, v in sorted(self.steps.items(), key=lambda kv: int(kv[0]))},
            "retracted": list(self.retracted),
            "attempts": self.attempts,
            "submitted_at": _iso(self.submitted_at),
            "finished_at": _iso(self.finished_at),
            "last_error": self.last_error,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _state(m: Any) -> SubmissionState:
    return SubmissionState(
        report_id=int(m["report_id"]),
        status=m["status"],
        remote_report_id=m["remote_report_id"],
        steps=dict(m["steps"] or {}),
        retracted=list(m["retracted"] or []),
        attempts=int(m["attempts"]),
        claimed_by=m["claimed_by"],
        claimed_until=m["claimed_until"],
        submitted_at=m["submitted_at"],
        finished_at=m["finished_at"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class SubmissionHeld(ConflictError):
    """Another run holds the report's submission; ``until`` is when its hold expires."""

    def __init__(self, message: str, *, until: datetime | None = None) -> None:
        super().__init__(message)
        self.until = until


class SubmissionRepository:
    """Submission state per report and the log of every request and response."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def find(self, report_id: int) -> SubmissionState | None:
        """The report's submission, or None when it was never submitted."""
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(SUBMISSIONS).where(SUBMISSIONS.c.report_id == report_id)
            ).first()
        return _state(row._mapping) if row else None

    def get(self, report_id: int) -> SubmissionState:
        """The report's submission, or NotFoundError."""
        state = self.find(report_id)
        if state is None:
            raise NotFoundError(f"report {report_id} has no submission")
        return state

    def get_or_create(self, report_id: int) -> SubmissionState:
        """The report's submission, created ``pending`` when there is none."""
        state = self.find(report_id)
        if state is not None:
            return state
        now = utcnow()
        try:
            with write_transaction(self.store) as conn:
                conn.execute(
                    insert(SUBMISSIONS).values(
                        report_id=report_id,
                        status="pending",
                        steps={},
                        retracted=[],
                        attempts=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            pass  # created by a concurrent submitter meanwhile
        return self.get(report_id)

    def claim(self, report_id: int, actor: str, *, until: datetime) -> SubmissionState:
        """Hold the submission for one run; ConflictError while another run holds it."""
        now = utcnow()
        with write_transaction(self.store) as conn:
            if self.store.dialect == "postgresql":
                _report_lock(conn, report_id)  # serialised with report edits
            done = conn.execute(
                update(SUBMISSIONS)
                .where(
                    SUBMISSIONS.c.report_id == report_id,
                    SUBMISSIONS.c.status != "finished",
                    (SUBMISSIONS.c.claimed_until.is_(None)) | (SUBMISSIONS.c.claimed_until < now),
                )
                .values(claimed_by=actor[:200], claimed_until=until, updated_at=now)
            )
            if not getattr(done, "rowcount", 1):
                row = conn.execute(
                    select(SUBMISSIONS).where(SUBMISSIONS.c.report_id == report_id)
                ).first()
                if row is not None and row._mapping["status"] == "finished":
                    raise ConflictError(f"report {report_id} was already filed")
                raise SubmissionHeld(
                    f"report {report_id} is being submitted by "
                    f"{row._mapping['claimed_by'] if row else 'someone'}; wait for it to end "
                    "(a crashed run's hold expires) and try again",
                    until=row._mapping["claimed_until"] if row else None,
                )
        return self.get(report_id)

    def release(self, report_id: int) -> None:
        """End this run's hold."""
        with write_transaction(self.store) as conn:
            conn.execute(
                update(SUBMISSIONS)
                .where(SUBMISSIONS.c.report_id == report_id)
                .values(claimed_by=None, claimed_until=None)
            )

    def update(self, report_id: int, **values: Any) -> SubmissionState:
        """Persist finished steps or a status change at once (a crash resumes from here)."""
        with write_transaction(self.store) as conn:
            conn.execute(
                update(SUBMISSIONS)
                .where(SUBMISSIONS.c.report_id == report_id)
                .values(**values, updated_at=utcnow())
            )
        return self.get(report_id)

    def log_exchange(self, report_id: int | None, exchange: dict[str, Any]) -> None:
        """Store one request and its response (or error) as sent and received."""
        with write_transaction(self.store) as conn:
            conn.execute(
                insert(EXCHANGES).values(
                    report_id=report_id,
                    step=exchange["step"],
                    attempt=exchange["attempt"],
                    method=exchange["method"],
                    url=exchange["url"][:2048],
                    request_headers=exchange["request_headers"],
                    request_body=exchange["request_body"],
                    response_status=exchange["response_status"],
                    response_headers=exchange["response_headers"],
                    response_body=exchange["response_body"],
                    error=exchange["error"],
                    sent_at=exchange["sent_at"],
                    received_at=exchange["received_at"],
                )
            )

    def exchanges(self, report_id: int) -> list[dict[str, Any]]:
        """Every stored request and response of a report, oldest first."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(EXCHANGES).where(EXCHANGES.c.report_id == report_id).order_by(EXCHANGES.c.id)
            ).all()
        out = []
        for r in rows:
            m = dict(r._mapping)
            m["sent_at"] = _iso(m["sent_at"])
            m["received_at"] = _iso(m["received_at"])
            out.append(m)
        return out


# -- timeliness --------------------------------------------------------------------


def timeline_rows(store: Store) -> list[dict[str, Any]]:
    """Per case with a review or a report: detected, reviewed, submitted, finished times.

    Detected is the case's first detection; reviewed its confirmation (or
    dismissal); submitted the first accepted ``/submit`` of its report (else
    the time it was marked submitted); finished the hotline's ``/finish`` (else
    the time it was marked submitted).
    """
    query = (
        select(
            CASES.c.id,
            CASES.c.status,
            CASES.c.first_seen_at,
            CASES.c.reviewed_at,
            CASES.c.reported_at,
            REPORTS.c.id.label("report_id"),
            SUBMISSIONS.c.submitted_at,
            SUBMISSIONS.c.finished_at,
        )
        .select_from(
            CASES.outerjoin(REPORTS, REPORTS.c.case_id == CASES.c.id).outerjoin(
                SUBMISSIONS, SUBMISSIONS.c.report_id == REPORTS.c.id
            )
        )
        .order_by(CASES.c.id, REPORTS.c.id)
    )
    by_case: dict[int, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for r in conn.execute(query):
            m = r._mapping
            row = by_case.setdefault(
                int(m["id"]),
                {
                    "case_id": int(m["id"]),
                    "status": m["status"],
                    "detected_at": m["first_seen_at"],
                    "reviewed_at": m["reviewed_at"],
                    "submitted_at": None,
                    "finished_at": None,
                    "report_ids": [],
                },
            )
            if m["report_id"] is not None:
                row["report_ids"].append(int(m["report_id"]))
            if m["finished_at"] is not None:
                row["submitted_at"] = m["submitted_at"]
                row["finished_at"] = m["finished_at"]
            elif m["submitted_at"] is not None and row["finished_at"] is None:
                row["submitted_at"] = m["submitted_at"]
            if m["reported_at"] is not None:
                row["submitted_at"] = row["submitted_at"] or m["reported_at"]
                row["finished_at"] = row["finished_at"] or m["reported_at"]
    return list(by_case.values())


__all__ = [
    "CaseRepository",
    "RankInputs",
    "SubmissionHeld",
    "SubmissionRepository",
    "SubmissionState",
    "timeline_rows",
]
