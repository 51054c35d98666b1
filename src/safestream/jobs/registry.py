"""Job handlers configured on this server (one per job kind)."""

from __future__ import annotations

from collections.abc import Mapping

from safestream.actions.webhook import WebhookConfig, WebhookSender
from safestream.jobs.base import JobHandler


def configured_handlers(environ: Mapping[str, str] | None = None) -> list[JobHandler]:
    """Handlers for every job kind this server is configured to run.

    Raises ConfigError for bad configuration (e.g. a webhook URL that is not
    http(s), or one without a secret).
    """
    handlers: list[JobHandler] = []
    webhook = WebhookConfig.from_env(environ)
    if webhook is not None:
        handlers.append(WebhookSender(webhook))
    return handlers
