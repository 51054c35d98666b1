"""The ``requests_escalate`` job: fire due escalations, then schedule the next run.

With it, ``safestream worker`` watches request deadlines without cron. The job
is *periodic*: each run enqueues its successor for the next time slot
(``SAFESTREAM_ESCALATION_INTERVAL_S``, default 60 s; 0 turns it off, for sites
that prefer ``safestream requests escalate`` from cron).

Why this never runs twice at once, and survives restarts:

* Each run is a claimed job row (one worker holds its lease); the successor is
  enqueued only when a run ends (also when it fails), for a time after that
  end, so a chain's runs never overlap; a run that finds another run of its
  kind holding a live lease skips its work.
* The successor's idempotency key names its slot (``<kind>:slot:<n>``, with
  slot ``n`` starting at ``n * interval`` since the epoch): a run retried after
  its worker died enqueues the same successor, and two chains (two workers
  seeding at once) fall into the same key and merge into one.
* The next run is a row in the database, so it survives restarts; a worker
  start seeds a run only when none of this kind is queued or running
  (:func:`ensure_scheduled`, called by the job registry).
* An escalation fires once whatever runs it: fired levels are stored on the
  request row, which is locked while it is escalated
  (:meth:`RequestService.escalate_due`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from safestream.actions.webhook import WebhookConfig
from safestream.errors import ConfigError
from safestream.jobs.base import JobContext
from safestream.requests.model import DeadlineStandards
from safestream.requests.service import RequestService
from safestream.store.db import Store
from safestream.store.jobs import JOBS, QUEUED, RUNNING, Job, JobRepository
from safestream.store.models import utcnow

JOB_KIND = "requests_escalate"
ENV_INTERVAL = "SAFESTREAM_ESCALATION_INTERVAL_S"
DEFAULT_INTERVAL_S = 60.0
Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


def interval_from_env(
    name: str, default_s: float, environ: Mapping[str, str] | None = None
) -> float:
    """Seconds between runs of a periodic job from ``name``; 0 turns it off."""
    env = os.environ if environ is None else environ
    raw = env.get(name, "").strip()
    if not raw:
        return default_s
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be a number of seconds (0 turns it off), got {raw!r}"
        ) from None
    if not math.isfinite(value) or value < 0 or 0 < value < 1:
        raise ConfigError(f"{name} must be 0 (off) or at least 1 second, got {raw!r}")
    return value


@dataclass(frozen=True)
class PeriodicSchedule:
    """When a periodic job kind runs next, and the idempotency key of that run."""

    kind: str
    interval_s: float

    @property
    def enabled(self) -> bool:
        """False when the interval is 0 (the job is run from cron instead)."""
        return self.interval_s > 0

    def next_slot(self, after: datetime) -> tuple[datetime, str]:
        """The first slot starting strictly after ``after``: (its start, its key)."""
        n = math.floor(after.timestamp() / self.interval_s) + 1
        start = datetime.fromtimestamp(n * self.interval_s, UTC)
        return start, f"{self.kind}:slot:{n}"

    def enqueue_next(self, jobs: JobRepository, after: datetime) -> Job | None:
        """Enqueue the run of the next slot (deduplicated by its key); None when off."""
        if not self.enabled:
            return None
        run_after, key = self.next_slot(after)
        job, _ = jobs.enqueue(
            self.kind, {"periodic": True}, idempotency_key=key, run_after=run_after
        )
        return job

    def other_running(self, jobs: JobRepository, job: Job, now: datetime) -> bool:
        """True when another job of this kind holds a live lease (then this run skips)."""
        with jobs.store.engine.connect() as conn:
            n = conn.execute(
                select(func.count())
                .select_from(JOBS)
                .where(
                    JOBS.c.kind == self.kind,
                    JOBS.c.status == RUNNING,
                    JOBS.c.id != job.id,
                    JOBS.c.lease_expires_at >= now,
                )
            ).scalar_one()
        return bool(n)

    def ensure_scheduled(self, jobs: JobRepository, now: datetime) -> Job | None:
        """Seed a run when none of this kind is queued or running (at worker start)."""
        if not self.enabled:
            return None
        with jobs.store.engine.connect() as conn:
            pending = conn.execute(
                select(func.count())
                .select_from(JOBS)
                .where(JOBS.c.kind == self.kind, JOBS.c.status.in_((QUEUED, RUNNING)))
            ).scalar_one()
        if pending:
            return None
        return self.enqueue_next(jobs, now)


class RequestsEscalateHandler:
    """Fires due escalations in the worker and keeps the next run scheduled."""

    kind: str = JOB_KIND

    def __init__(
        self,
        service: RequestService,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.schedule = PeriodicSchedule(JOB_KIND, interval_s)
        self.clock = clock or service.clock
        self.jobs = JobRepository(service.store)

    @classmethod
    def from_env(
        cls, store: Store, environ: Mapping[str, str] | None = None
    ) -> RequestsEscalateHandler:
        """Over the configured deadline standards and webhook."""
        service = RequestService(
            store,
            standards=DeadlineStandards.from_env(environ),
            webhook=WebhookConfig.from_env(environ),
            clock=utcnow,
        )
        return cls(service, interval_s=interval_from_env(ENV_INTERVAL, DEFAULT_INTERVAL_S, environ))

    def ensure_scheduled(self) -> Job | None:
        """Seed the periodic run if none is pending (called at worker start)."""
        return self.schedule.ensure_scheduled(self.jobs, self.clock())

    def run(self, job: Job, ctx: JobContext) -> dict[str, Any] | None:
        """Fire due escalations; the next run is enqueued whatever happens."""
        try:
            ctx.check()
            if self.schedule.other_running(self.jobs, job, self.clock()):
                # Two chains met (a retry, two workers seeding): let the other one work.
                return {"skipped": "another requests_escalate run holds a lease"}
            fired = self.service.escalate_due()
        finally:
            # After the work, for a slot after its end: runs of a chain never overlap.
            nxt = self.schedule.enqueue_next(self.jobs, self.clock() + timedelta(microseconds=1))
        return {
            "fired": len(fired),
            "escalations": fired[:1000],
            "next_job_id": nxt.id if nxt is not None else None,
        }


__all__ = [
    "JOB_KIND",
    "PeriodicSchedule",
    "RequestsEscalateHandler",
    "interval_from_env",
]
