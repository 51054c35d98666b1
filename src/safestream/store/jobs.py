"""SQL of the job table: enqueue, claim under a lease, finish, retry, dead-letter, replay.

Claiming is the one delicate statement. Several workers (threads or processes,
on one or many hosts) poll the same table, and each ready job must go to
exactly one of them:

* PostgreSQL: ``UPDATE jobs ... WHERE id = (SELECT id ... FOR UPDATE SKIP
  LOCKED LIMIT 1) RETURNING *`` — a competing claimer skips the row locked by
  the first instead of waiting for it or taking it too.
* SQLite: the same ``UPDATE ... RETURNING`` inside ``BEGIN IMMEDIATE``, which
  takes the database's single write lock before reading, so claims are
  serialised (``busy_timeout`` makes the others wait, not fail); the outer
  ``WHERE`` repeats the readiness test as a second guard.

A claim sets a fresh ``lease_token``; finishing, retrying or dead-lettering a
job only succeeds with that token while the job is still ``running``, so a
worker whose lease expired (and whose job another worker took over) cannot
overwrite the newer attempt's outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from safestream.errors import InputError, NotFoundError
from safestream.store.db import Store
from safestream.store.models import DeadLetterRow, JobRow, utcnow

JOBS = cast(Table, JobRow.__table__)
DEAD = cast(Table, DeadLetterRow.__table__)

#: Job states.
QUEUED, RUNNING, DONE, DEAD_STATUS = "queued", "running", "done", "dead"


@dataclass(frozen=True)
class Job:
    """A job as a worker sees it; ``lease_token`` is set while it is claimed."""

    id: int
    kind: str
    idempotency_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_token: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    #: What the job produced, or its progress while it runs (None: nothing yet).
    result: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the payload, which may be large)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "run_after": self.run_after.isoformat(),
            "lease_owner": self.lease_owner,
            "lease_expires_at": (
                self.lease_expires_at.isoformat() if self.lease_expires_at else None
            ),
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "result": self.result,
        }


@dataclass(frozen=True)
class DeadLetter:
    """A job that failed for good."""

    id: int
    job_id: int
    kind: str
    idempotency_key: str
    attempts: int
    last_error: str | None
    dead_at: datetime
    replayed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "kind": self.kind,
            "idempotency_key": self.idempotency_key,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "dead_at": self.dead_at.isoformat(),
            "replayed_at": self.replayed_at.isoformat() if self.replayed_at else None,
        }


def _job(row: Any) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        kind=m["kind"],
        idempotency_key=m["idempotency_key"],
        payload=m["payload"],
        status=m["status"],
        attempts=m["attempts"],
        max_attempts=m["max_attempts"],
        run_after=m["run_after"],
        lease_token=m["lease_token"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        finished_at=m["finished_at"],
        result=m["result"],
    )


def _dead(row: Any) -> DeadLetter:
    m = row._mapping
    return DeadLetter(
        id=m["id"],
        job_id=m["job_id"],
        kind=m["kind"],
        idempotency_key=m["idempotency_key"],
        attempts=m["attempts"],
        last_error=m["last_error"],
        dead_at=m["dead_at"],
        replayed_at=m["replayed_at"],
    )


@contextmanager
def write_transaction(store: Store) -> Iterator[Connection]:
    """A transaction that holds the write lock from its start on SQLite.

    A deferred SQLite transaction that reads and then writes can fail with
    ``database is locked`` when another connection wrote in between (WAL
    snapshot conflict); ``BEGIN IMMEDIATE`` waits for the lock instead.
    PostgreSQL needs nothing special (row locks do the work).
    """
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _clip(message: str | None, limit: int = 2000) -> str | None:
    return None if message is None else message[:limit]


class JobRepository:
    """The job table and its dead letters."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        max_attempts: int = 8,
        run_after: datetime | None = None,
    ) -> tuple[Job, bool]:
        """Add a job; returns it and True, or the existing job with that key and False."""
        if max_attempts < 1:
            raise InputError("max_attempts must be at least 1")
        key = idempotency_key or f"{kind}:{uuid.uuid4()}"
        now = utcnow()
        try:
            with write_transaction(self.store) as conn:
                job_id = conn.execute(
                    insert(JOBS)
                    .values(
                        kind=kind,
                        idempotency_key=key,
                        payload=payload,
                        status=QUEUED,
                        attempts=0,
                        max_attempts=max_attempts,
                        run_after=run_after or now,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(JOBS.c.id)
                ).scalar_one()
        except IntegrityError:
            existing = self.get_by_key(key)
            if existing is None:  # the unique key was not the conflict: a real error
                raise
            return existing, False
        return self.get(job_id), True

    def get(self, job_id: int) -> Job:
        """One job by id."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"no job with id {job_id}")
        return _job(row)

    def get_by_key(self, idempotency_key: str) -> Job | None:
        """The job with this idempotency key, or None."""
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(JOBS).where(JOBS.c.idempotency_key == idempotency_key)
            ).first()
        return _job(row) if row is not None else None

    def recent(
        self,
        status: str | None = None,
        limit: int = 100,
        *,
        kinds: tuple[str, ...] | None = None,
        before_id: int | None = None,
    ) -> list[Job]:
        """Jobs, newest first, optionally of one status, of some kinds, older than an id."""
        query = select(JOBS).order_by(JOBS.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(JOBS.c.status == status)
        if kinds is not None:
            query = query.where(JOBS.c.kind.in_(kinds))
        if before_id is not None:
            query = query.where(JOBS.c.id < before_id)
        with self.store.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def counts(self, kinds: tuple[str, ...] | None = None) -> dict[str, int]:
        """How many jobs are in each state (of the given kinds, or all)."""
        query = select(JOBS.c.status, func.count()).group_by(JOBS.c.status)
        if kinds is not None:
            query = query.where(JOBS.c.kind.in_(kinds))
        with self.store.engine.connect() as conn:
            return {str(status): int(n) for status, n in conn.execute(query)}

    def claim(
        self,
        owner: str,
        *,
        lease_s: float,
        kinds: tuple[str, ...] | None = None,
        now: datetime | None = None,
    ) -> Job | None:
        """Claim the next ready job (queued and due, or with an expired lease), or None.

        The claim counts as an attempt; the lease lasts ``lease_s`` seconds.
        """
        now = now or utcnow()
        ready = or_(
            and_(JOBS.c.status == QUEUED, JOBS.c.run_after <= now),
            and_(JOBS.c.status == RUNNING, JOBS.c.lease_expires_at < now),
        )
        if kinds is not None:
            ready = and_(ready, JOBS.c.kind.in_(kinds))
        pick = select(JOBS.c.id).where(ready).order_by(JOBS.c.run_after, JOBS.c.id).limit(1)
        if self.store.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        claim = (
            update(JOBS)
            .where(JOBS.c.id == pick.scalar_subquery(), ready)
            .values(
                status=RUNNING,
                attempts=JOBS.c.attempts + 1,
                lease_token=uuid.uuid4().hex,
                lease_owner=owner[:200],
                lease_expires_at=now + timedelta(seconds=lease_s),
                updated_at=now,
            )
            .returning(*JOBS.c)
        )
        with write_transaction(self.store) as conn:
            row = conn.execute(claim).first()
        return _job(row) if row is not None else None

    def _owned(self, job: Job) -> Any:
        return and_(
            JOBS.c.id == job.id, JOBS.c.status == RUNNING, JOBS.c.lease_token == job.lease_token
        )

    def extend_lease(self, job: Job, *, lease_s: float, now: datetime | None = None) -> bool:
        """Renew a claimed job's lease (heartbeat); False when it was lost to another worker.

        Long jobs (a 10M-line import, a scan of a big folder) outlast any fixed
        lease; the worker calls this every third of the lease while the job runs.
        """
        now = now or utcnow()
        with write_transaction(self.store) as conn:
            result = conn.execute(
                update(JOBS)
                .where(self._owned(job))
                .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
            )
            return bool(result.rowcount)

    def set_result(self, job: Job, result: dict[str, Any], *, now: datetime | None = None) -> bool:
        """Record a running job's progress; False when the lease was lost."""
        now = now or utcnow()
        with write_transaction(self.store) as conn:
            outcome = conn.execute(
                update(JOBS).where(self._owned(job)).values(result=result, updated_at=now)
            )
            return bool(outcome.rowcount)

    def queued_count(self) -> int:
        """Jobs waiting to run (queued, including those waiting for a retry)."""
        with self.store.engine.connect() as conn:
            n = conn.execute(
                select(func.count()).select_from(JOBS).where(JOBS.c.status == QUEUED)
            ).scalar_one()
        return int(n)

    def complete(
        self, job: Job, *, result: dict[str, Any] | None = None, now: datetime | None = None
    ) -> bool:
        """Mark a claimed job done; False when the lease was lost to another worker."""
        now = now or utcnow()
        values: dict[str, Any] = {
            "status": DONE,
            "lease_token": None,
            "lease_expires_at": None,
            "last_error": None,
            "updated_at": now,
            "finished_at": now,
        }
        if result is not None:
            values["result"] = result
        with write_transaction(self.store) as conn:
            outcome = conn.execute(update(JOBS).where(self._owned(job)).values(**values))
            return bool(outcome.rowcount)

    def retry(self, job: Job, error: str, *, delay_s: float, now: datetime | None = None) -> bool:
        """Put a claimed job back in the queue to run after ``delay_s`` seconds."""
        now = now or utcnow()
        with write_transaction(self.store) as conn:
            result = conn.execute(
                update(JOBS)
                .where(self._owned(job))
                .values(
                    status=QUEUED,
                    lease_token=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error=_clip(error),
                    run_after=now + timedelta(seconds=max(0.0, delay_s)),
                    updated_at=now,
                )
            )
            return bool(result.rowcount)

    def dead_letter(self, job: Job, error: str, *, now: datetime | None = None) -> bool:
        """Move a claimed job to the dead-letter table (one transaction)."""
        now = now or utcnow()
        with write_transaction(self.store) as conn:
            result = conn.execute(
                update(JOBS)
                .where(self._owned(job))
                .values(
                    status=DEAD_STATUS,
                    lease_token=None,
                    lease_expires_at=None,
                    last_error=_clip(error),
                    updated_at=now,
                    finished_at=now,
                )
            )
            if not result.rowcount:
                return False
            conn.execute(
                insert(DEAD).values(
                    job_id=job.id,
                    kind=job.kind,
                    idempotency_key=job.idempotency_key,
                    attempts=job.attempts,
                    last_error=_clip(error),
                    dead_at=now,
                )
            )
            return True

    def dead_letters(
        self, *, include_replayed: bool = False, limit: int = 1000
    ) -> list[DeadLetter]:
        """Dead letters, oldest first; by default only those not replayed yet."""
        query = select(DEAD).order_by(DEAD.c.id).limit(limit)
        if not include_replayed:
            query = query.where(DEAD.c.replayed_at.is_(None))
        with self.store.engine.connect() as conn:
            return [_dead(r) for r in conn.execute(query)]

    def replay(self, dead_letter_id: int, *, now: datetime | None = None) -> Job:
        """Queue a dead-lettered job again with fresh attempts (same idempotency key)."""
        now = now or utcnow()
        with write_transaction(self.store) as conn:
            row = conn.execute(select(DEAD).where(DEAD.c.id == dead_letter_id)).first()
            if row is None:
                raise NotFoundError(f"no dead letter with id {dead_letter_id}")
            dead = _dead(row)
            if dead.replayed_at is not None:
                raise InputError(
                    f"dead letter {dead_letter_id} was already replayed at "
                    f"{dead.replayed_at.isoformat()}; see job {dead.job_id}"
                )
            conn.execute(
                update(JOBS)
                .where(JOBS.c.id == dead.job_id, JOBS.c.status == DEAD_STATUS)
                .values(
                    status=QUEUED,
                    attempts=0,
                    run_after=now,
                    lease_token=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                    finished_at=None,
                )
            )
            conn.execute(update(DEAD).where(DEAD.c.id == dead.id).values(replayed_at=now))
        return self.get(dead.job_id)


__all__ = ["DEAD_STATUS", "DONE", "QUEUED", "RUNNING", "DeadLetter", "Job", "JobRepository"]
