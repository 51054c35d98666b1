"""Background jobs: the handler contract, backoff, and the worker that runs them."""

from safestream.jobs.base import Backoff, JobHandler, PermanentJobError, RetryableJobError

__all__ = ["Backoff", "JobHandler", "PermanentJobError", "RetryableJobError"]
