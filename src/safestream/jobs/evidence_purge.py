"""The ``evidence_purge`` job: destroy evidence whose holds all expired (audited).

Periodic: each run enqueues the next one (``SAFESTREAM_PURGE_INTERVAL_S``,
default 3600 s; 0 turns it off, for sites that run ``safestream evidence purge``
or ``--enqueue`` from cron). Slot-keyed successors, one claimed row per run and
a skip when another run holds a live lease keep two purges from running at
once (see :mod:`safestream.jobs.requests_escalate`); a purge running twice
would be harmless anyway. Purging needs no key: it deletes ciphertext.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from safestream.evidence.backends import backend_from_env
from safestream.evidence.store import EvidenceStore
from safestream.jobs.base import JobContext
from safestream.jobs.periodic import PeriodicSchedule, interval_from_env
from safestream.store.db import Store
from safestream.store.jobs import Job, JobRepository

JOB_KIND = "evidence_purge"
ENV_INTERVAL = "SAFESTREAM_PURGE_INTERVAL_S"
DEFAULT_INTERVAL_S = 3600.0


class EvidencePurgeHandler:
    """Runs evidence purges in the worker and keeps the next one scheduled."""

    kind: str = JOB_KIND

    def __init__(self, evidence: EvidenceStore, *, interval_s: float = 0.0) -> None:
        self.evidence = evidence
        self.schedule = PeriodicSchedule(JOB_KIND, interval_s)
        self.jobs = JobRepository(evidence.store)

    @classmethod
    def from_env(
        cls, store: Store, environ: Mapping[str, str] | None = None
    ) -> EvidencePurgeHandler:
        """Over the configured evidence backend, every ``SAFESTREAM_PURGE_INTERVAL_S``."""
        return cls(
            EvidenceStore(store, backend_from_env(environ), None),
            interval_s=interval_from_env(ENV_INTERVAL, DEFAULT_INTERVAL_S, environ),
        )

    def ensure_scheduled(self) -> Job | None:
        """Seed the periodic run if none is pending (called at worker start)."""
        return self.schedule.ensure_scheduled(self.jobs, self.evidence.clock())

    def run(self, job: Job, ctx: JobContext) -> dict[str, Any] | None:
        """Purge once; the result lists the purged object ids."""
        try:
            ctx.check()
            if self.schedule.other_running(self.jobs, job, self.evidence.clock()):
                return {"skipped": "another evidence_purge run holds a lease"}
            purged = self.evidence.purge_expired()
        finally:
            nxt = self.schedule.enqueue_next(
                self.jobs, self.evidence.clock() + timedelta(microseconds=1)
            )
        out: dict[str, Any] = {"purged": len(purged), "evidence_ids": purged[:1000]}
        if nxt is not None:
            out["next_job_id"] = nxt.id
        return out
