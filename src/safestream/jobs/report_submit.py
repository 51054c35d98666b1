"""The ``report_submit`` job: file a stored report with the CyberTipline API in the worker.

``POST /v1/reports/{id}/submit`` (and ``safestream reports submit --queue``)
checks everything it can up front (:meth:`SubmissionService.preflight`) and
queues this job; a worker runs the resumable submission flow, so no HTTP
request waits on the hotline or on its retries.

* **One job per report at a time.** :func:`enqueue_submit` returns the queued
  or running job of the report if there is one. Otherwise it enqueues a new
  one whose idempotency key names the report and the last job before it
  (``report_submit:<report>:after:<job id or 0>``), so two requests racing
  each other fall into the same key and get the same job.
* **Retries.** A transient failure (the hotline down, 5xx, 429, a lost
  connection) is a :class:`RetryableJobError`: the worker retries with its
  backoff. The client's own in-call retries stay small in a job
  (:data:`CLIENT_MAX_ATTEMPTS`). A refusal (bad credentials, a rejected
  document) is a :class:`PermanentJobError`: the job is dead-lettered with the
  hotline's message, and a later request (after fixing the configuration or
  the report) queues a fresh job, which resumes the submission.
* **Crashes.** The flow persists every step, so a new attempt resumes where
  the last one stopped, and ``/finish`` is sent only for the one persisted
  remote id. A run that finds the report held by another run (a crashed
  worker's hold lasts :data:`~safestream.reports.submission.CLAIM`) retries
  once the hold has expired.

The job's ``result`` holds the outcome: ``remote_report_id`` once filed, or
``error`` and ``retryable`` after a failed attempt.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from safestream.errors import ConfigError, ConflictError, NotFoundError
from safestream.jobs.base import JobContext, PermanentJobError, RetryableJobError
from safestream.reports.submission import (
    ENV_URL,
    CybertipConfig,
    CybertipError,
    SubmissionService,
    evidence_finder,
)
from safestream.store.cases import SubmissionHeld, SubmissionRepository
from safestream.store.db import Store
from safestream.store.jobs import QUEUED, RUNNING, Job, JobRepository
from safestream.store.models import utcnow

log = logging.getLogger(__name__)

#: The job kind of CyberTipline submissions.
JOB_KIND = "report_submit"
#: Attempts before the job is dead-lettered (transient failures only; refusals die at once).
MAX_ATTEMPTS = 8
#: In-call attempts of the client inside a job: the job's own backoff does the rest.
CLIENT_MAX_ATTEMPTS = 2
#: Cap of the client's in-call wait inside a job (seconds).
CLIENT_BACKOFF_CAP_S = 5.0

#: Builds the submission service of one job for its actor (the person who asked).
ServiceFactory = Callable[[str], SubmissionService]


def _key_prefix(report_id: int) -> str:
    return f"{JOB_KIND}:{report_id}:"


def latest_job(jobs: JobRepository, report_id: int) -> Job | None:
    """The newest ``report_submit`` job of a report, or None.

    A report's jobs form a chain through their keys (each names the one
    before it), walked by exact key: a few indexed lookups, however many jobs
    of other kinds the table holds.
    """
    found: Job | None = None
    while True:
        after = found.id if found is not None else 0
        nxt = jobs.get_by_key(f"{_key_prefix(report_id)}after:{after}")
        if nxt is None:
            return found
        found = nxt


def enqueue_submit(
    store: Store, report_id: int, *, actor: str, override_reason: str | None = None
) -> tuple[Job, bool]:
    """Queue the submission of a report; (job, created). The caller ran the preflight.

    While a job of the report is queued or running, that job is returned
    (created False): never two jobs for one report at a time.
    """
    jobs = JobRepository(store)
    previous = latest_job(jobs, report_id)
    if previous is not None and previous.status in (QUEUED, RUNNING):
        return previous, False
    key = f"{_key_prefix(report_id)}after:{previous.id if previous else 0}"
    payload = {"report_id": report_id, "actor": actor[:200], "override_reason": override_reason}
    return jobs.enqueue(JOB_KIND, payload, idempotency_key=key, max_attempts=MAX_ATTEMPTS)


def job_config(config: CybertipConfig) -> CybertipConfig:
    """``config`` with the small in-call retries of a job."""
    return dataclasses.replace(
        config,
        max_attempts=min(config.max_attempts, CLIENT_MAX_ATTEMPTS),
        backoff_cap_s=max(config.backoff_s, min(config.backoff_cap_s, CLIENT_BACKOFF_CAP_S)),
    )


class ReportSubmitHandler:
    """Runs ``report_submit`` jobs: the resumable submission flow, outcome in the result."""

    kind: str = JOB_KIND

    def __init__(self, store: Store, service_for: ServiceFactory) -> None:
        self.store = store
        self.service_for = service_for
        self.jobs = JobRepository(store)

    @classmethod
    def from_env(
        cls, store: Store, environ: Mapping[str, str] | None = None
    ) -> ReportSubmitHandler | None:
        """From ``SAFESTREAM_CYBERTIP_*``; None when ``SAFESTREAM_CYBERTIP_URL`` is unset.

        Raises ConfigError when the URL is set but the rest is missing or
        invalid. Preserved files are read from the evidence store configured
        by ``SAFESTREAM_EVIDENCE_*`` (keys are needed only when there are some).
        """
        import os

        env = os.environ if environ is None else environ
        if not env.get(ENV_URL, "").strip():
            return None
        config = job_config(CybertipConfig.from_env(env))

        def service_for(actor: str) -> SubmissionService:
            from safestream.cases.model import CaseConfig
            from safestream.cases.service import CaseService
            from safestream.evidence.store import EvidenceStore
            from safestream.reports.service import ReportService

            reports = ReportService(CaseService(store, CaseConfig.from_env()))
            evidence = EvidenceStore.from_env(store, environ, need_keys=False)
            return SubmissionService.from_config(
                reports, config, files=evidence_finder(evidence, actor=actor)
            )

        return cls(store, service_for)

    def run(self, job: Job, ctx: JobContext) -> dict[str, Any] | None:
        """One attempt of the submission; raises Retryable- or PermanentJobError on failure."""
        try:
            report_id = int(job.payload["report_id"])
            actor = str(job.payload["actor"])
        except (KeyError, TypeError, ValueError):
            raise PermanentJobError(
                f"job {job.id}: payload lacks report_id/actor; queue it again with "
                "POST /v1/reports/{id}/submit"
            ) from None
        reason = job.payload.get("override_reason")
        base = {"report_id": report_id}
        ctx.check()
        try:
            svc = self.service_for(actor)
            state = svc.submit(
                report_id, actor=actor, override_reason=str(reason) if reason else None
            )
        except CybertipError as exc:
            message = f"{type(exc).__name__}: {exc}"
            ctx.progress(base | {"error": message, "retryable": exc.retryable})
            if exc.retryable:
                raise RetryableJobError(message) from None
            raise PermanentJobError(message) from None
        except SubmissionHeld as exc:
            # Another run holds the report (or a crashed one's hold has not expired).
            wait = (exc.until - utcnow()).total_seconds() if exc.until else None
            ctx.progress(base | {"error": str(exc), "retryable": True})
            raise RetryableJobError(str(exc), retry_after_s=wait) from None
        except ConflictError as exc:
            filed = SubmissionRepository(self.store).find(report_id)
            if filed is not None and filed.status == "finished":
                # Filed meanwhile by another run (the CLI, an earlier job): done.
                return base | {
                    "status": "finished",
                    "remote_report_id": filed.remote_report_id,
                    "already_filed": True,
                }
            ctx.progress(base | {"error": str(exc), "retryable": False})
            raise PermanentJobError(str(exc)) from None
        except (NotFoundError, ConfigError) as exc:
            ctx.progress(base | {"error": str(exc), "retryable": False})
            raise PermanentJobError(str(exc)) from None
        return base | {
            "status": state["status"],
            "remote_report_id": state["remote_report_id"],
            "finished_at": state["finished_at"],
        }


__all__ = [
    "CLIENT_MAX_ATTEMPTS",
    "JOB_KIND",
    "MAX_ATTEMPTS",
    "ReportSubmitHandler",
    "enqueue_submit",
    "job_config",
    "latest_job",
]
