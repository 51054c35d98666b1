"""The ``evidence_purge`` job: registered, run by the worker, purges only unheld objects."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from evidence_support import Clock, png
from safestream.evidence.store import EvidenceStore
from safestream.jobs.evidence_purge import JOB_KIND, EvidencePurgeHandler
from safestream.jobs.registry import configured_handlers
from safestream.jobs.worker import Worker, WorkerOptions
from safestream.store.audit import AuditRepository
from safestream.store.db import Store
from safestream.store.jobs import JobRepository


def test_registered(store: Store, tmp_path: Path) -> None:
    kinds = {h.kind for h in configured_handlers({}, store=store)}
    assert JOB_KIND in kinds


def test_worker_runs_purge(store: Store, evidence: EvidenceStore, clock: Clock) -> None:
    expiring = evidence.preserve(
        png(1), actor="k", basis="preservation_request", legal_basis="letter 1"
    ).id
    kept = evidence.preserve(png(2), actor="k", basis="report", legal_basis="report 2").id
    clock.advance(timedelta(days=91))
    jobs = JobRepository(store)
    job, _ = jobs.enqueue(JOB_KIND, {})
    worker = Worker(
        jobs, [EvidencePurgeHandler(evidence)], WorkerOptions(once=True, poll_interval_s=0.01)
    )
    worker.run()
    done = jobs.get(job.id)
    assert done.status == "done", done.last_error
    assert done.result == {"purged": 1, "evidence_ids": [expiring]}
    assert evidence.record(expiring).status == "purged"
    assert evidence.record(kept).status == "active"
    assert [e.object_id for e in AuditRepository(store).list_events(action="evidence.purge")] == [
        expiring
    ]
