"""The ``requests_escalate`` job: fire due escalations, then schedule the next run.

With it, ``safestream worker`` watches request deadlines without cron. The job
is *periodic*: each run enqueues its successor for the next time slot
(``SAFESTREAM_ESCALATION_INTERVAL_S``, default 60 s; 0 turns it off, for sites
that prefer ``safestream requests escalate`` from cron).

Runs never overlap and survive restarts (see :mod:`safestream.jobs.periodic`), and
an escalation fires once whatever runs it: fired levels are stored on the request
row, which is locked while it is escalated (:meth:`RequestService.escalate_due`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from safestream.actions.webhook import WebhookConfig
from safestream.jobs.base import JobContext
from safestream.jobs.periodic import PeriodicSchedule, interval_from_env
from safestream.requests.model import DeadlineStandards
from safestream.requests.service import RequestService
from safestream.store.db import Store
from safestream.store.jobs import Job, JobRepository
from safestream.store.models import utcnow

JOB_KIND = "requests_escalate"
ENV_INTERVAL = "SAFESTREAM_ESCALATION_INTERVAL_S"
DEFAULT_INTERVAL_S = 60.0
Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


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
