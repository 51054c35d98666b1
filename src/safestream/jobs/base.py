"""What a job handler is, how it reports failure, and how long to wait before a retry."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from safestream.errors import SafestreamError

if TYPE_CHECKING:
    from safestream.store.jobs import Job, JobRepository


class JobError(SafestreamError):
    """A job attempt failed."""


class RetryableJobError(JobError):
    """A transient failure (timeout, 5xx, connection refused): try again later.

    ``retry_after_s`` is the wait the other side asked for (``Retry-After``), if any.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentJobError(JobError):
    """A failure that retrying cannot fix (e.g. HTTP 400): dead-letter at once."""


class LeaseLost(BaseException):
    """The worker no longer holds the job's lease: stop now, record nothing.

    A BaseException on purpose, like KeyboardInterrupt: it must pass through a
    handler's ``except Exception`` clean-up. The importer, for one, marks an
    import failed (dropping what it staged) on an ordinary error, but leaves it
    resumable on an interrupt, which is what the worker that took the job over
    needs.
    """


class JobContext:
    """What a running job can ask of its worker: is the lease still ours; save progress."""

    def __init__(self, job: Job, jobs: JobRepository) -> None:
        self.job = job
        self._jobs = jobs
        self._lost = threading.Event()

    @property
    def lease_lost(self) -> bool:
        """True once a heartbeat found the job taken over by another worker."""
        return self._lost.is_set()

    def mark_lost(self) -> None:
        """Called by the heartbeat when renewing the lease failed for good."""
        self._lost.set()

    def check(self) -> None:
        """Raise :class:`LeaseLost` when the lease is gone (call between units of work)."""
        if self._lost.is_set():
            raise LeaseLost(f"job {self.job.id}: lease lost to another worker")

    def progress(self, result: dict[str, Any]) -> None:
        """Record progress in the job row (lease-checked); raises LeaseLost when it is gone."""
        self.check()
        if not self._jobs.set_result(self.job, result):
            self._lost.set()
            self.check()


class JobHandler(Protocol):
    """Runs one kind of job; returns normally when the job is done."""

    #: The ``kind`` of jobs this handler runs.
    kind: str

    def __call__(self, job: Job) -> None:
        """Run one attempt; raise Retryable- or PermanentJobError on failure."""


@runtime_checkable
class LongJobHandler(Protocol):
    """A handler of long jobs: gets a :class:`JobContext` and returns a result summary.

    The worker renews the lease while it runs; the handler calls
    ``ctx.check()`` or ``ctx.progress()`` between units of work so that it
    stops soon after its job was taken over by another worker.
    """

    kind: str

    def run(self, job: Job, ctx: JobContext) -> dict[str, Any] | None:
        """Run one attempt; raise Retryable- or PermanentJobError on failure."""


#: Either kind of handler.
AnyJobHandler = JobHandler | LongJobHandler


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits ``base_s * 2**(n-1)``, capped.

    The wait is drawn uniformly from [half of it, all of it] so that many jobs
    failing together (a receiver outage) do not all retry in the same second.
    """

    base_s: float = 10.0
    max_s: float = 900.0

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_s, self.base_s * 2 ** max(0, attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_s))
        return delay
