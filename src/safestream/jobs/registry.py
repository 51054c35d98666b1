"""Job handlers configured on this server (one per job kind)."""

from __future__ import annotations

from collections.abc import Mapping

from safestream.actions.webhook import WebhookConfig, WebhookSender
from safestream.jobs.bank_import import BankImportHandler
from safestream.jobs.base import AnyJobHandler
from safestream.jobs.batch_scan import BatchScanHandler
from safestream.jobs.evidence_purge import EvidencePurgeHandler
from safestream.jobs.report_submit import ReportSubmitHandler
from safestream.jobs.requests_escalate import RequestsEscalateHandler
from safestream.jobs.video_check import VideoCheckHandler
from safestream.store.db import Store
from safestream.store.jobs import Job


def configured_handlers(
    environ: Mapping[str, str] | None = None, *, store: Store | None = None
) -> list[AnyJobHandler]:
    """Handlers for every job kind this server is configured to run.

    Webhooks need ``SAFESTREAM_WEBHOOK_URL``; bank imports, batch scans, evidence
    purges and request escalations need the store they work on (``store``). Raises
    ConfigError for bad configuration (e.g. a webhook URL that is not http(s), or
    one without a secret, or a relative scan root).
    """
    handlers: list[AnyJobHandler] = []
    webhook = WebhookConfig.from_env(environ)
    if webhook is not None:
        handlers.append(WebhookSender(webhook))
    if store is not None:
        handlers.append(BankImportHandler.from_env(store, environ))
        handlers.append(BatchScanHandler.from_env(store, environ))
        handlers.append(VideoCheckHandler.from_env(store, environ))
        handlers.append(EvidencePurgeHandler.from_env(store, environ))
        handlers.append(RequestsEscalateHandler.from_env(store, environ))
        # CyberTipline submissions, when SAFESTREAM_CYBERTIP_URL is set.
        report_submit = ReportSubmitHandler.from_env(store, environ)
        if report_submit is not None:
            handlers.append(report_submit)
    return handlers


def schedule_periodic(handlers: list[AnyJobHandler]) -> list[Job]:
    """Seed the next run of each periodic kind that has none queued or running.

    Call it when a worker starts (``evidence_purge`` every
    ``SAFESTREAM_PURGE_INTERVAL_S``, ``requests_escalate`` every
    ``SAFESTREAM_ESCALATION_INTERVAL_S``); each run then enqueues the next one.
    """
    seeded = []
    for handler in handlers:
        if isinstance(handler, EvidencePurgeHandler | RequestsEscalateHandler):
            job = handler.ensure_scheduled()
            if job is not None:
                seeded.append(job)
    return seeded
