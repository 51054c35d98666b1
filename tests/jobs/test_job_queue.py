"""The job table: idempotent enqueue, exclusive claims, leases, retries, dead letters."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest

from safestream.errors import InputError
from safestream.jobs.base import Backoff
from safestream.jobs.worker import Worker, WorkerOptions
from safestream.store.db import Store, make_engine
from safestream.store.jobs import Job, JobRepository
from safestream.store.models import utcnow
from webhook_support import store_url


def test_enqueue_is_idempotent_per_key(store: Store) -> None:
    jobs = JobRepository(store)
    first, created = jobs.enqueue("webhook", {"n": 1}, idempotency_key="k1")
    again, created_again = jobs.enqueue("webhook", {"n": 2}, idempotency_key="k1")
    assert created and not created_again
    assert again.id == first.id and again.payload == {"n": 1}
    assert jobs.counts() == {"queued": 1}


def test_claim_is_exclusive_under_concurrency(store: Store) -> None:
    setup = JobRepository(store)
    for i in range(40):
        setup.enqueue("webhook", {"i": i}, idempotency_key=f"job-{i}")
    url = store_url(store)
    claims: Counter[int] = Counter()
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def claimer(n: int) -> None:
        # Each thread has its own engine, as separate worker processes would.
        own = Store(make_engine(url))
        jobs = JobRepository(own)
        try:
            barrier.wait()
            while (job := jobs.claim(f"w{n}", lease_s=60)) is not None:
                claims[job.id] += 1
                assert jobs.complete(job)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(claims) == 40
    assert set(claims.values()) == {1}
    assert setup.counts() == {"done": 40}


def test_expired_lease_is_reclaimed_and_stale_owner_loses(store: Store) -> None:
    jobs = JobRepository(store)
    jobs.enqueue("webhook", {}, idempotency_key="lease")
    t0 = utcnow()
    first = jobs.claim("a", lease_s=30, now=t0)
    assert first is not None and first.attempts == 1
    assert jobs.claim("b", lease_s=30, now=t0 + timedelta(seconds=10)) is None
    second = jobs.claim("b", lease_s=30, now=t0 + timedelta(seconds=31))
    assert second is not None and second.id == first.id
    assert second.attempts == 2 and second.lease_token != first.lease_token
    assert not jobs.complete(first)  # the dead worker's late answer is ignored
    assert jobs.complete(second)
    assert jobs.get(first.id).status == "done"


def test_retry_waits_for_run_after(store: Store) -> None:
    jobs = JobRepository(store)
    jobs.enqueue("webhook", {}, idempotency_key="retry")
    t0 = utcnow()
    job = jobs.claim("a", lease_s=30, now=t0)
    assert job is not None
    assert jobs.retry(job, "HTTP 503", delay_s=60, now=t0)
    assert jobs.claim("a", lease_s=30, now=t0 + timedelta(seconds=59)) is None
    again = jobs.claim("a", lease_s=30, now=t0 + timedelta(seconds=61))
    assert again is not None and again.attempts == 2 and again.last_error == "HTTP 503"


def test_dead_letter_and_replay(store: Store) -> None:
    jobs = JobRepository(store)
    job, _ = jobs.enqueue("webhook", {"x": 1}, idempotency_key="dead", max_attempts=1)
    claimed = jobs.claim("a", lease_s=30)
    assert claimed is not None
    assert jobs.dead_letter(claimed, "HTTP 400")
    assert jobs.get(job.id).status == "dead"
    assert jobs.claim("a", lease_s=30) is None
    [dead] = jobs.dead_letters()
    assert (dead.job_id, dead.last_error, dead.attempts) == (job.id, "HTTP 400", 1)
    replayed = jobs.replay(dead.id)
    assert (replayed.status, replayed.attempts) == ("queued", 0)
    assert replayed.idempotency_key == "dead"
    assert jobs.dead_letters() == []
    assert jobs.dead_letters(include_replayed=True)[0].replayed_at is not None
    with pytest.raises(InputError, match="already replayed"):
        jobs.replay(dead.id)
    assert jobs.claim("a", lease_s=30) is not None


def test_backoff_grows_exponentially_with_jitter_and_cap() -> None:
    b = Backoff(base_s=10, max_s=100)
    for attempt, ceiling in ((1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (12, 100)):
        for _ in range(20):
            assert ceiling / 2 <= b.delay_s(attempt) <= ceiling
    assert b.delay_s(1, retry_after_s=50) >= 50
    assert b.delay_s(1, retry_after_s=10_000) <= 100


class _Recorder:
    """A job handler that records the jobs it ran."""

    kind = "note"

    def __init__(self) -> None:
        self.ran: list[int] = []

    def __call__(self, job: Job) -> None:
        self.ran.append(job.id)


def test_job_whose_lease_keeps_expiring_is_dead_lettered(store: Store) -> None:
    jobs = JobRepository(store)
    an_hour_ago = utcnow() - timedelta(hours=1)
    job, _ = jobs.enqueue(
        "note", {}, idempotency_key="poison", max_attempts=1, run_after=an_hour_ago
    )
    # Its only attempt was claimed an hour ago by a worker that never came back.
    assert jobs.claim("gone", lease_s=1, now=an_hour_ago) is not None
    handler = _Recorder()
    stats = Worker(jobs, [handler], WorkerOptions(lease_s=30, once=True)).run()
    assert handler.ran == [] and stats.dead == 1
    [dead] = jobs.dead_letters()
    assert dead.job_id == job.id and "lease expired" in (dead.last_error or "")


def test_worker_only_claims_kinds_it_handles(store: Store) -> None:
    jobs = JobRepository(store)
    other, _ = jobs.enqueue("bulk_import", {}, idempotency_key="other")
    mine, _ = jobs.enqueue("note", {}, idempotency_key="mine")
    handler = _Recorder()
    assert Worker(jobs, [handler], WorkerOptions(once=True)).run().done == 1
    assert handler.ran == [mine.id] and jobs.get(other.id).status == "queued"
