"""What a job handler is, how it reports failure, and how long to wait before a retry."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from safestream.errors import SafestreamError

if TYPE_CHECKING:
    from safestream.store.jobs import Job


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


class JobHandler(Protocol):
    """Runs one kind of job; returns normally when the job is done."""

    #: The ``kind`` of jobs this handler runs.
    kind: str

    def __call__(self, job: Job) -> None:
        """Run one attempt; raise Retryable- or PermanentJobError on failure."""


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
