"""Job handlers configured on this server (one per job kind)."""

from __future__ import annotations

from collections.abc import Mapping

from safestream.actions.webhook import WebhookConfig, WebhookSender
from safestream.jobs.bank_import import BankImportHandler
from safestream.jobs.base import AnyJobHandler
from safestream.jobs.batch_scan import BatchScanHandler
from safestream.jobs.evidence_purge import EvidencePurgeHandler
from safestream.store.db import Store


def configured_handlers(
    environ: Mapping[str, str] | None = None, *, store: Store | None = None
) -> list[AnyJobHandler]:
    """Handlers for every job kind this server is configured to run.

    Webhooks need ``SAFESTREAM_WEBHOOK_URL``; bank imports, batch scans and evidence
    purges need the store they work on (``store``). Raises ConfigError for bad
    configuration (e.g. a webhook URL that is not http(s), or one without a
    secret, or a relative scan root).
    """
    handlers: list[AnyJobHandler] = []
    webhook = WebhookConfig.from_env(environ)
    if webhook is not None:
        handlers.append(WebhookSender(webhook))
    if store is not None:
        handlers.append(BankImportHandler.from_env(store, environ))
        handlers.append(BatchScanHandler.from_env(store, environ))
        handlers.append(EvidencePurgeHandler.from_env(store, environ))
    return handlers
