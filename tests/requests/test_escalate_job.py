"""The periodic ``requests_escalate`` and ``evidence_purge`` jobs, driven by an injected clock.

Runs are claimed from the job table exactly as the worker claims them
(``JobRepository.claim`` at the test clock's time) and run through the handler.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from evidence_support import Clock, png
from requests_support import new_request
from safestream.actions.webhook import WebhookConfig
from safestream.errors import ConfigError
from safestream.evidence.store import EvidenceStore
from safestream.jobs.base import JobContext
from safestream.jobs.evidence_purge import JOB_KIND as PURGE_KIND
from safestream.jobs.evidence_purge import EvidencePurgeHandler
from safestream.jobs.periodic import PeriodicSchedule, interval_from_env
from safestream.jobs.registry import configured_handlers, schedule_periodic
from safestream.jobs.requests_escalate import JOB_KIND, RequestsEscalateHandler
from safestream.requests.model import NewRequest
from safestream.requests.service import RequestService
from safestream.store.audit import AuditRepository
from safestream.store.db import Store
from safestream.store.jobs import Job, JobRepository

HOOK = WebhookConfig(url="http://127.0.0.1:9/hook", secret="s" * 32)


def new(clock: Clock) -> NewRequest:
    return new_request(clock.now)


def claim_and_run(jobs: JobRepository, handler: Any, clock: Clock) -> tuple[Job, Any] | None:
    """Claim the next due job of the handler's kind at the clock's time, run it, finish it."""
    job = jobs.claim("test-worker", lease_s=60, kinds=(handler.kind,), now=clock.now)
    if job is None:
        return None
    result = handler.run(job, JobContext(job, jobs))
    assert jobs.complete(job, result=result, now=clock.now)
    return job, result


def pending(jobs: JobRepository, kind: str) -> list[Job]:
    return [j for j in jobs.recent(kinds=(kind,)) if j.status in ("queued", "running")]


def test_escalations_fire_from_the_worker_job_once_and_survive_restarts(
    store: Store, clock: Clock
) -> None:
    jobs = JobRepository(store)
    service = RequestService(store, clock=clock, webhook=HOOK)
    handler = RequestsEscalateHandler(service, interval_s=60)
    r = service.create(new(clock), actor="k")
    seeded = handler.ensure_scheduled()
    assert seeded is not None and seeded.run_after > clock.now
    assert handler.ensure_scheduled() is None  # one pending run is enough
    assert claim_and_run(jobs, handler, clock) is None  # not due yet
    clock.advance(timedelta(seconds=60))
    ran = claim_and_run(jobs, handler, clock)
    assert ran is not None and ran[1]["fired"] == 0
    [nxt] = pending(jobs, JOB_KIND)
    assert nxt.run_after > clock.now and nxt.id == ran[1]["next_job_id"]

    clock.advance(timedelta(hours=13))  # half the 24 h is gone
    ran = claim_and_run(jobs, handler, clock)
    assert ran is not None and [e["level"] for e in ran[1]["escalations"]] == ["0.5"]
    # A restarted worker (new handler, same database) does not fire it again.
    restarted = RequestsEscalateHandler(RequestService(store, clock=clock, webhook=HOOK))
    assert restarted.ensure_scheduled() is None  # the chain's next run is already stored
    clock.advance(timedelta(minutes=5))
    ran = claim_and_run(jobs, restarted, clock)
    assert ran is not None and ran[1]["fired"] == 0
    clock.advance(timedelta(hours=12))
    ran = claim_and_run(jobs, restarted, clock)
    assert ran is not None and [e["level"] for e in ran[1]["escalations"]] == ["overdue"]
    events = AuditRepository(store).list_events(action="request.escalation")
    assert [(e.object_id, e.detail["level"]) for e in events] == [
        (str(r.id), "0.5"),
        (str(r.id), "overdue"),
    ]
    webhooks = {j.idempotency_key for j in jobs.recent(kinds=("webhook",))}
    assert webhooks == {f"le-escalation-{r.id}-0.5", f"le-escalation-{r.id}-overdue"}
    assert len(pending(jobs, JOB_KIND)) == 1  # always exactly one next run


def test_a_second_run_never_works_concurrently(store: Store, clock: Clock) -> None:
    jobs = JobRepository(store)
    service = RequestService(store, clock=clock)
    handler = RequestsEscalateHandler(service, interval_s=60)
    service.create(new(clock), actor="k")
    first, _ = jobs.enqueue(JOB_KIND, {}, run_after=clock.now)
    second, _ = jobs.enqueue(JOB_KIND, {}, run_after=clock.now)
    clock.advance(timedelta(days=2))
    a = jobs.claim("w1", lease_s=60, kinds=(JOB_KIND,), now=clock.now)
    b = jobs.claim("w2", lease_s=60, kinds=(JOB_KIND,), now=clock.now)
    assert a is not None and b is not None and {a.id, b.id} == {first.id, second.id}
    # b runs while a still holds its lease: it skips the work.
    skipped = handler.run(b, JobContext(b, jobs))
    assert skipped is not None and "skipped" in skipped
    assert AuditRepository(store).list_events(action="request.escalation") == []
    assert jobs.complete(b, result=skipped, now=clock.now)
    done = handler.run(a, JobContext(a, jobs))
    assert done is not None and done["fired"] == 1
    # Both runs asked for the same next slot: one row.
    assert [j.status for j in pending(jobs, JOB_KIND)] == ["queued", "running"]


def test_a_failing_run_still_schedules_the_next(store: Store, clock: Clock) -> None:
    jobs = JobRepository(store)
    service = RequestService(store, clock=clock)
    handler = RequestsEscalateHandler(service, interval_s=120)

    def broken(**_kw: Any) -> list[dict[str, Any]]:
        raise RuntimeError("database hiccup")

    service.escalate_due = broken  # type: ignore[method-assign]
    jobs.enqueue(JOB_KIND, {}, run_after=clock.now)
    claimed = jobs.claim("w", lease_s=60, kinds=(JOB_KIND,), now=clock.now)
    assert claimed is not None
    with pytest.raises(RuntimeError):
        handler.run(claimed, JobContext(claimed, jobs))
    [nxt] = [j for j in pending(jobs, JOB_KIND) if j.status == "queued"]
    run_after, key = PeriodicSchedule(JOB_KIND, 120).next_slot(clock.now)
    assert nxt.run_after == run_after and nxt.idempotency_key == key


def test_slots_and_intervals() -> None:
    sched = PeriodicSchedule(JOB_KIND, 60)
    clock = Clock()
    start, key = sched.next_slot(clock.now)
    assert start > clock.now and start - clock.now <= timedelta(seconds=60)
    assert sched.next_slot(clock.now + timedelta(seconds=1)) == (start, key)  # same slot
    assert sched.next_slot(start)[0] == start + timedelta(seconds=60)
    assert interval_from_env("X", 60, {}) == 60
    assert interval_from_env("X", 60, {"X": "0"}) == 0
    assert interval_from_env("X", 60, {"X": "300"}) == 300
    for bad in ("abc", "-1", "0.5", "nan", "inf"):
        with pytest.raises(ConfigError, match="X must be"):
            interval_from_env("X", 60, {"X": bad})


def test_interval_zero_turns_the_chain_off(store: Store, clock: Clock) -> None:
    jobs = JobRepository(store)
    handler = RequestsEscalateHandler(RequestService(store, clock=clock), interval_s=0)
    assert handler.ensure_scheduled() is None
    jobs.enqueue(JOB_KIND, {}, run_after=clock.now)
    ran = claim_and_run(jobs, handler, clock)
    assert ran is not None and ran[1]["next_job_id"] is None
    assert pending(jobs, JOB_KIND) == []


def test_worker_start_seeds_both_periodic_jobs_once(store: Store) -> None:
    env = {"SAFESTREAM_ESCALATION_INTERVAL_S": "30", "SAFESTREAM_PURGE_INTERVAL_S": "600"}
    handlers = configured_handlers(env, store=store)
    assert {JOB_KIND, PURGE_KIND} <= {h.kind for h in handlers}
    jobs = JobRepository(store)
    assert pending(jobs, JOB_KIND) == []  # building handlers enqueues nothing
    seeded = schedule_periodic(handlers)
    assert sorted(j.kind for j in seeded) == sorted([JOB_KIND, PURGE_KIND])
    assert schedule_periodic(configured_handlers(env, store=store)) == []  # a second worker
    assert len(pending(jobs, JOB_KIND)) == 1 and len(pending(jobs, PURGE_KIND)) == 1
    with pytest.raises(ConfigError, match="SAFESTREAM_PURGE_INTERVAL_S"):
        configured_handlers({"SAFESTREAM_PURGE_INTERVAL_S": "soon"}, store=store)


def test_periodic_purge(store: Store, evidence: EvidenceStore, clock: Clock) -> None:
    jobs = JobRepository(store)
    handler = EvidencePurgeHandler(evidence, interval_s=3600)
    eid = evidence.preserve(png(1), actor="k", basis="preservation_request", legal_basis="l 1").id
    assert handler.ensure_scheduled() is not None
    clock.advance(timedelta(hours=1))
    ran = claim_and_run(jobs, handler, clock)
    assert ran is not None and ran[1]["purged"] == 0
    clock.advance(timedelta(days=91))
    ran = claim_and_run(jobs, handler, clock)  # the next slot is long due
    assert ran is not None and ran[1]["evidence_ids"] == [eid]
    assert evidence.record(eid).status == "purged"
    assert len(pending(jobs, PURGE_KIND)) == 1
