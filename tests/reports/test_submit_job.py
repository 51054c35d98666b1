"""The ``report_submit`` job against the fake hotline, with the worker driven in the test."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cases_support import confirmed_report
from cybertip_support import PASSWORD, USER, FakeCybertip, running
from safestream.errors import ConfigError
from safestream.jobs.base import Backoff, JobContext, PermanentJobError
from safestream.jobs.registry import configured_handlers
from safestream.jobs.report_submit import (
    CLIENT_MAX_ATTEMPTS,
    JOB_KIND,
    ReportSubmitHandler,
    enqueue_submit,
    job_config,
    latest_job,
)
from safestream.jobs.worker import Worker, WorkerOptions
from safestream.reports.service import ReportService
from safestream.reports.submission import (
    CybertipClient,
    CybertipConfig,
    FileSource,
    SubmissionService,
)
from safestream.store.cases import SubmissionRepository
from safestream.store.db import Store
from safestream.store.jobs import Job, JobRepository
from safestream.store.models import utcnow


def built(store: Store, files: int = 2) -> tuple[ReportService, int]:
    """A confirmed case with a stored report of ``files`` synthetic files."""
    return confirmed_report(store, files)


class Crash(SubmissionService):
    """Raises after the first ``crash_at`` step once (a worker dying mid-flow)."""

    crash_at = "upload"
    crashed = False

    def _after_step(self, step: str, state: Any) -> None:
        if step == self.crash_at and not Crash.crashed:
            Crash.crashed = True
            raise RuntimeError(f"simulated crash after {step}")


def handler(
    store: Store,
    rs: ReportService,
    fake: FakeCybertip,
    *,
    password: str = PASSWORD,
    cls: type[SubmissionService] = SubmissionService,
) -> ReportSubmitHandler:
    config = job_config(
        CybertipConfig(base_url=fake.url, user=USER, password=password, timeout_s=10)
    )

    def service_for(actor: str) -> SubmissionService:
        return cls(
            rs,
            lambda log: CybertipClient(config, on_exchange=log, sleep=lambda _s: None),
            files=lambda *_: FileSource(b"synthetic bytes", "image/png"),
        )

    return ReportSubmitHandler(store, service_for)


def drive(store: Store, h: ReportSubmitHandler) -> Worker:
    """Run the worker until no job is ready (retries wait 0 s)."""
    worker = Worker(
        JobRepository(store),
        [h],
        WorkerOptions(once=True, poll_interval_s=0.01, backoff=Backoff(base_s=0.0, max_s=0.0)),
    )
    worker.run()
    return worker


def test_job_files_the_report_and_records_the_remote_id(store: Store) -> None:
    rs, rid = built(store)
    job, created = enqueue_submit(store, rid, actor="le")
    assert created and job.kind == JOB_KIND and job.status == "queued"
    with running() as fake:
        assert fake.calls == []  # queuing sends nothing
        drive(store, handler(store, rs, fake))
        done = JobRepository(store).get(job.id)
        assert done.status == "done", done.last_error
        assert done.result is not None
        (remote,) = fake.in_state("finished")
        assert done.result["remote_report_id"] == remote
        assert done.result["status"] == "finished" and done.result["report_id"] == rid
    assert rs.cases.get(rs.get(rid).case_id).status == "reported"


def test_one_job_per_report_while_queued_or_running(store: Store) -> None:
    _, rid = built(store, files=1)
    first, created = enqueue_submit(store, rid, actor="le")
    again, created_again = enqueue_submit(store, rid, actor="someone-else")
    assert created and not created_again and again.id == first.id
    jobs = JobRepository(store)
    claimed = jobs.claim("w", lease_s=60, kinds=(JOB_KIND,))
    assert claimed is not None and claimed.id == first.id
    assert enqueue_submit(store, rid, actor="le")[0].id == first.id  # running: same job
    assert jobs.dead_letter(claimed, "test")
    # once it has ended, a new request queues a new job (to resume the submission)
    fresh, created = enqueue_submit(store, rid, actor="le")
    assert created and fresh.id != first.id
    assert latest_job(jobs, rid) == fresh
    # another report's jobs are not mixed up with this one's (id prefix 1 vs 11)
    assert latest_job(jobs, rid * 10 + 1) is None


def test_transient_failures_are_retried_by_the_job(store: Store) -> None:
    rs, rid = built(store, files=1)
    job, _ = enqueue_submit(store, rid, actor="le")
    with running() as fake:
        # more 503s than the client's in-call attempts: the job itself must retry
        fake.path_faults["/submit"] = ["503"] * (CLIENT_MAX_ATTEMPTS + 1)
        worker = drive(store, handler(store, rs, fake))
        done = JobRepository(store).get(job.id)
        assert done.status == "done", done.last_error
        assert done.attempts == 2 and worker.stats.retried == 1
        assert fake.count("/submit") == CLIENT_MAX_ATTEMPTS + 2
        assert len(fake.in_state("finished")) == 1 and fake.count("/finish") == 1


def test_auth_failure_fails_the_job_and_a_new_job_resumes(store: Store) -> None:
    rs, rid = built(store, files=1)
    job, _ = enqueue_submit(store, rid, actor="le")
    jobs = JobRepository(store)
    with running() as fake:
        drive(store, handler(store, rs, fake, password="wrong-password"))
        dead = jobs.get(job.id)
        assert dead.status == "dead" and dead.attempts == 1  # a refusal is not retried
        assert dead.last_error and "credentials" in dead.last_error
        assert dead.result is not None and dead.result["retryable"] is False
        assert "CybertipAuthError" in dead.result["error"]
        assert len(fake.calls) == 1
        # configuration fixed: the next request queues a job that files the report
        fixed, created = enqueue_submit(store, rid, actor="le")
        assert created
        drive(store, handler(store, rs, fake))
        assert jobs.get(fixed.id).status == "done"
        assert len(fake.in_state("finished")) == 1


def test_dead_job_replayed_after_the_fix_files_once(store: Store) -> None:
    rs, rid = built(store, files=1)
    job, _ = enqueue_submit(store, rid, actor="le")
    jobs = JobRepository(store)
    with running() as fake:
        fake.path_faults["/fileinfo"] = ["invalid"]  # the hotline refuses a document
        drive(store, handler(store, rs, fake))
        assert jobs.get(job.id).status == "dead"
        assert fake.in_state("retracted") and not fake.in_state("finished")
        (letter,) = jobs.dead_letters()
        jobs.replay(letter.id)
        drive(store, handler(store, rs, fake))
        assert jobs.get(job.id).status == "done"
        assert len(fake.in_state("finished")) == 1 and fake.count("/finish") == 1


@pytest.mark.parametrize("step", ["submit", "upload", "fileinfo", "finish"])
def test_crash_mid_flow_resumes_with_one_finish(store: Store, step: str) -> None:
    rs, rid = built(store, files=2)
    job, _ = enqueue_submit(store, rid, actor="le")
    Crash.crashed = False
    crashing = type("C", (Crash,), {"crash_at": step})
    with running() as fake:
        drive(store, handler(store, rs, fake, cls=crashing))
        assert Crash.crashed
        done = JobRepository(store).get(job.id)
        assert done.status == "done" and done.attempts == 2, done.last_error
        assert fake.count("/submit") == 1 and fake.count("/finish") == 1
        assert fake.count("/retract") == 0
        (held,) = fake.reports.values()
        assert held.state == "finished" and len(held.files) == 2 and len(held.file_details) == 2
    assert rs.cases.get(rs.get(rid).case_id).status == "reported"


def test_a_dead_workers_hold_is_waited_for_then_resumed(store: Store) -> None:
    rs, rid = built(store, files=1)
    subs = SubmissionRepository(store)
    subs.get_or_create(rid)
    until = utcnow() + timedelta(minutes=10)
    subs.claim(rid, "crashed-worker", until=until)  # left by a worker that died
    job, _ = enqueue_submit(store, rid, actor="le")
    jobs = JobRepository(store)
    with running() as fake:
        h = handler(store, rs, fake)
        worker = Worker(jobs, [h], WorkerOptions(once=True, backoff=Backoff(0.0, 900.0)))
        worker.run()
        waiting = jobs.get(job.id)
        assert waiting.status == "queued" and "crashed-worker" in (waiting.last_error or "")
        assert waiting.result is not None and waiting.result["retryable"] is True
        assert waiting.run_after >= until - timedelta(seconds=5)  # after the hold expires
        assert fake.calls == []
        subs.release(rid)  # the hold expired
        claimed = jobs.claim("w", lease_s=60, now=until + timedelta(seconds=1))
        assert claimed is not None and claimed.id == job.id
        worker.run_one(claimed)
        assert jobs.get(job.id).status == "done"
        assert fake.count("/finish") == 1


def test_filed_meanwhile_is_done_and_refusals_are_permanent(store: Store) -> None:
    rs, rid = built(store, files=1)
    jobs = JobRepository(store)
    with running() as fake:
        h = handler(store, rs, fake)
        # filed synchronously (the CLI) while the job waited: the job is done, sends nothing
        job, _ = enqueue_submit(store, rid, actor="le")
        h.service_for("le").submit(rid, actor="le")
        before = len(fake.calls)
        drive(store, h)
        done = jobs.get(job.id)
        assert done.status == "done" and done.result is not None
        assert done.result["already_filed"] is True
        assert len(fake.calls) == before
        # a job for an unknown report, and one with a bad payload, die at once
        ghost, _ = enqueue_submit(store, 999, actor="le")
        odd, _ = jobs.enqueue(JOB_KIND, {"nothing": 1}, idempotency_key="report_submit:odd")
        drive(store, h)
        assert jobs.get(ghost.id).status == "dead" and "no report" in str(
            jobs.get(ghost.id).last_error
        )
        assert jobs.get(odd.id).status == "dead"


def test_handler_from_env_and_registry(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URL", "USER", "PASSWORD"):
        monkeypatch.delenv(f"SAFESTREAM_CYBERTIP_{name}", raising=False)
    assert ReportSubmitHandler.from_env(store, {}) is None
    kinds = {h.kind for h in configured_handlers({}, store=store)}
    assert JOB_KIND not in kinds
    env = {
        "SAFESTREAM_CYBERTIP_URL": "http://127.0.0.1:9/ispws",
        "SAFESTREAM_CYBERTIP_USER": USER,
        "SAFESTREAM_CYBERTIP_PASSWORD": PASSWORD,
        "SAFESTREAM_CYBERTIP_MAX_ATTEMPTS": "9",
    }
    assert ReportSubmitHandler.from_env(store, env) is not None
    assert JOB_KIND in {h.kind for h in configured_handlers(env, store=store)}
    with pytest.raises(ConfigError, match="SAFESTREAM_CYBERTIP_USER"):
        ReportSubmitHandler.from_env(store, {"SAFESTREAM_CYBERTIP_URL": "test"})
    small = job_config(CybertipConfig.from_env(env))
    assert small.max_attempts == CLIENT_MAX_ATTEMPTS and small.backoff_cap_s <= 5.0


def test_payload_without_report_is_permanent(store: Store) -> None:
    h = ReportSubmitHandler(store, lambda actor: pytest.fail("no service for a bad payload"))
    jobs = JobRepository(store)
    jobs.enqueue(JOB_KIND, {"report_id": "x", "actor": "le"}, idempotency_key="k")
    claimed = jobs.claim("w", lease_s=60)
    assert isinstance(claimed, Job)
    with pytest.raises(PermanentJobError, match="report_id"):
        h.run(claimed, JobContext(claimed, jobs))
