"""The worker: claim jobs under a lease, run their handler, record the outcome.

Delivery is at least once. A worker killed mid-job leaves its row ``running``
with a lease that expires ``lease_s`` seconds after the claim; any worker then
claims it again (as a new attempt). Handlers therefore send an idempotency key
(webhooks: ``X-Safestream-Delivery``) so the other side can drop the repeat.
While a job runs, a heartbeat thread renews its lease every third of
``lease_s`` (``extend_lease``, checked against the claim's token), so a long
import or scan keeps its job however long it takes, and only a dead (or cut
off) worker lets the lease lapse. A heartbeat that finds the job taken over
tells the handler through its :class:`JobContext`; long handlers stop at their
next checkpoint, and whatever the old attempt returns is ignored.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from safestream.errors import ConfigError
from safestream.jobs.base import (
    AnyJobHandler,
    Backoff,
    JobContext,
    LeaseLost,
    LongJobHandler,
    PermanentJobError,
    RetryableJobError,
)
from safestream.store.jobs import Job, JobRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs."""

    #: Seconds a claim lasts; a job of a dead worker is claimed again after this.
    lease_s: float = 60.0
    #: Seconds between polls when the queue is empty.
    poll_interval_s: float = 1.0
    #: Threads claiming and running jobs.
    concurrency: int = 1
    #: Stop once no job is ready (instead of waiting for more).
    once: bool = False
    #: Stop after this many jobs (None: no limit).
    max_jobs: int | None = None
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if self.lease_s <= 0:
            raise ConfigError("the lease must be longer than 0 seconds")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise ConfigError("max_jobs must be at least 1")


@dataclass
class WorkerStats:
    """What a worker did."""

    done: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0


class Worker:
    """Runs jobs from the table until stopped (``stop()``, a signal) or out of work."""

    def __init__(
        self, jobs: JobRepository, handlers: Iterable[AnyJobHandler], options: WorkerOptions
    ) -> None:
        self.jobs = jobs
        self.handlers = {h.kind: h for h in handlers}
        if not self.handlers:
            raise ConfigError("the worker has no job handlers: nothing is configured to run")
        self.options = options
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started = 0
        self._name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def stop(self) -> None:
        """Ask every thread to stop after its current job."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def run(self) -> WorkerStats:
        """Run ``concurrency`` threads until they finish; returns the totals."""
        threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"safestream-worker-{i}")
            for i in range(self.options.concurrency)
        ]
        for t in threads:
            t.start()
        # Join in short steps so the main thread keeps handling signals.
        for t in threads:
            while t.is_alive():
                t.join(0.2)
        return self.stats

    def _take_slot(self) -> bool:
        with self._lock:
            if self.options.max_jobs is not None and self._started >= self.options.max_jobs:
                return False
            self._started += 1
            return True

    def _give_back_slot(self) -> None:
        with self._lock:
            self._started -= 1

    def _loop(self, index: int) -> None:
        owner = f"{self._name}:{index}"
        kinds = tuple(sorted(self.handlers))
        while not self._stop.is_set():
            if not self._take_slot():
                return
            try:
                job = self.jobs.claim(owner, lease_s=self.options.lease_s, kinds=kinds)
            except Exception:  # the database may be briefly unreachable: keep polling
                self._give_back_slot()
                log.warning("claiming a job failed; will retry", exc_info=True)
                self._stop.wait(self.options.poll_interval_s)
                continue
            if job is None:
                self._give_back_slot()
                if self.options.once:
                    return
                self._stop.wait(self.options.poll_interval_s)
                continue
            try:
                self.run_one(job)
            except Exception:
                # Recording the outcome failed (database unreachable): the lease
                # will expire and the job run again; this thread carries on.
                log.exception("recording a job outcome failed", extra={"job_id": job.id})
                self._stop.wait(self.options.poll_interval_s)

    def run_one(self, job: Job) -> None:
        """Run one claimed job and record its outcome."""
        extra = {"job_id": job.id, "kind": job.kind, "attempt": job.attempts}
        if job.attempts > job.max_attempts:
            # Claimed again after its lease expired once too often (a job that
            # kills or hangs its worker): stop retrying it.
            self._dead(job, f"gave up: lease expired after attempt {job.attempts - 1}")
            return
        try:
            result = self._call_handler(job)
        except LeaseLost:
            self._lost(job)
        except PermanentJobError as exc:
            log.warning("job failed permanently: %s", exc, extra=extra)
            self._dead(job, str(exc))
        except Exception as exc:
            retry_after = exc.retry_after_s if isinstance(exc, RetryableJobError) else None
            message = str(exc) if isinstance(exc, RetryableJobError) else repr(exc)
            if not isinstance(exc, RetryableJobError):
                log.exception("job handler raised unexpectedly", extra=extra)
            if job.attempts >= job.max_attempts:
                self._dead(job, f"gave up after {job.attempts} attempts: {message}")
                return
            delay = self.options.backoff.delay_s(job.attempts, retry_after)
            log.info("job failed, retrying in %.1f s: %s", delay, message, extra=extra)
            if self.jobs.retry(job, message, delay_s=delay):
                with self._lock:
                    self.stats.retried += 1
            else:
                self._lost(job)
        else:
            if self.jobs.complete(job, result=result):
                log.info("job done", extra=extra)
                with self._lock:
                    self.stats.done += 1
            else:
                self._lost(job)

    def _call_handler(self, job: Job) -> dict[str, Any] | None:
        """Run the job's handler with its lease renewed by a heartbeat thread."""
        ctx = JobContext(job, self.jobs)
        finished = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(ctx, finished), name=f"heartbeat-{job.id}", daemon=True
        )
        heartbeat.start()
        try:
            handler = self.handlers[job.kind]
            if isinstance(handler, LongJobHandler):
                result = handler.run(job, ctx)
            else:
                handler(job)
                result = None
        finally:
            finished.set()
            heartbeat.join()
        # Taken over while finishing: the other worker's attempt decides the outcome.
        ctx.check()
        return result

    def _heartbeat(self, ctx: JobContext, finished: threading.Event) -> None:
        """Renew the lease every third of it until the job finishes or is taken over."""
        interval = self.options.lease_s / 3
        while not finished.wait(interval):
            try:
                if not self.jobs.extend_lease(ctx.job, lease_s=self.options.lease_s):
                    log.warning("job taken over by another worker", extra={"job_id": ctx.job.id})
                    ctx.mark_lost()
                    return
            except Exception:  # the database may be briefly unreachable: try again
                log.warning("renewing a job lease failed; will retry", exc_info=True)

    def _dead(self, job: Job, message: str) -> None:
        if self.jobs.dead_letter(job, message):
            with self._lock:
                self.stats.dead += 1
        else:
            self._lost(job)

    def _lost(self, job: Job) -> None:
        # The lease expired and another worker took the job over: its outcome wins.
        log.warning("lease lost before the job finished", extra={"job_id": job.id})
        with self._lock:
            self.stats.lost += 1


__all__ = ["Worker", "WorkerOptions", "WorkerStats"]
