"""Background jobs: the handler contract, backoff, and the worker that runs them."""

from safestream.jobs.base import (
    AnyJobHandler,
    Backoff,
    JobContext,
    JobHandler,
    LeaseLost,
    LongJobHandler,
    PermanentJobError,
    RetryableJobError,
)

__all__ = [
    "AnyJobHandler",
    "Backoff",
    "JobContext",
    "JobHandler",
    "LeaseLost",
    "LongJobHandler",
    "PermanentJobError",
    "RetryableJobError",
]
