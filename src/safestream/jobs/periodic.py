"""Periodic jobs: a job kind whose every run enqueues the run of its next time slot.

Why a chain never runs twice at once, and survives restarts:

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
  (:meth:`PeriodicSchedule.ensure_scheduled`, called by the job registry).

Used by ``requests_escalate`` and ``evidence_purge``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from safestream.errors import ConfigError
from safestream.store.jobs import JOBS, QUEUED, RUNNING, Job, JobRepository


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


__all__ = ["PeriodicSchedule", "interval_from_env"]
