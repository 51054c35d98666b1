"""`safestream worker` processes: SIGKILL mid-job loses nothing; SIGTERM stops gracefully."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from webhook_support import Receiver, running_receiver, start_worker, worker_env

pytestmark = pytest.mark.slow


def test_worker_killed_mid_job_is_retried_after_lease_and_delivered_once(
    store: Store, tmp_path: Path
) -> None:
    jobs = JobRepository(store)
    job, _ = jobs.enqueue(
        "webhook", {"event": "check.decided", "content_id": "c-kill"}, idempotency_key="kill-1"
    )
    with running_receiver(Receiver(hold_first=True)) as rec:
        # The delivery timeout (1.9 s) must stay under half the lease (4 s); the
        # kill comes long before the timeout would end the held request.
        env = worker_env(store, rec, SAFESTREAM_WEBHOOK_TIMEOUT_S="1.9")
        first = start_worker(env, "--lease-s", "4", "--poll-interval", "0.05", cwd=tmp_path)
        try:
            # The receiver has the request (and recorded it); the worker waits for
            # the answer when it dies.
            assert rec.arrived.wait(60), first.stderr.read() if first.poll() is not None else ""
            first.kill()
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        assert jobs.get(job.id).status == "running"  # still leased to the dead worker
        second = start_worker(
            env, "--max-jobs", "1", "--lease-s", "4", "--poll-interval", "0.05", cwd=tmp_path
        )
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
    assert json.loads(out)["done"] == 1
    done = jobs.get(job.id)
    assert (done.status, done.attempts) == ("done", 2)
    # Sent twice (at least once), processed once: the receiver dedupes on the delivery id.
    assert len(rec.requests) == 2
    assert {r["headers"]["x-safestream-delivery"] for r in rec.requests} == {"kill-1"}
    assert list(rec.deliveries) == ["kill-1"] and rec.duplicates == 1
    assert all(r["signature_ok"] for r in rec.requests)
    assert jobs.dead_letters() == []


def test_sigterm_stops_an_idle_worker_gracefully(store: Store, tmp_path: Path) -> None:
    with running_receiver() as rec:
        worker = start_worker(worker_env(store, rec), "--poll-interval", "0.05", cwd=tmp_path)
        try:
            # Let it do one job, so it is surely in its loop, then stop it.
            deadline = time.monotonic() + 60
            JobRepository(store).enqueue("webhook", {}, idempotency_key="t-1")
            while not rec.deliveries and time.monotonic() < deadline:
                time.sleep(0.05)
            assert rec.deliveries
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert worker.returncode == 0, err
    assert json.loads(out)["done"] == 1
