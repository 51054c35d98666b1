"""The ``webhook`` action: a signed JSON POST to the server-configured URL, via a job.

The request handler only enqueues a job (no network call inside a request);
``safestream worker`` delivers it. The URL comes from server configuration
only (``SAFESTREAM_WEBHOOK_URL``), never from an API caller or a job row, so no
caller can make the service fetch an address of its choosing (SSRF).

Each delivery carries::

    Content-Type: application/json
    X-Safestream-Timestamp: <unix seconds>
    X-Safestream-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
    X-Safestream-Delivery: <idempotency key: the same on every retry of one event>
    Idempotency-Key: <the same>

Receivers check the signature with :func:`verify_signature` and dedupe on the
delivery id: delivery is at least once (a worker killed after the receiver got
the request but before it recorded success will send it again).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from safestream.actions.base import Action, ActionEnv, ActionEvent, ActionResult
from safestream.errors import ConfigError
from safestream.jobs.base import PermanentJobError, RetryableJobError
from safestream.requests.nondisclosure import identifiers_of, nondisclosure_applies

if TYPE_CHECKING:
    from safestream.store.jobs import Job

log = logging.getLogger(__name__)

ENV_URL = "SAFESTREAM_WEBHOOK_URL"
ENV_SECRET = "SAFESTREAM_WEBHOOK_SECRET"
ENV_TIMEOUT = "SAFESTREAM_WEBHOOK_TIMEOUT_S"
ENV_MAX_ATTEMPTS = "SAFESTREAM_WEBHOOK_MAX_ATTEMPTS"

#: The job kind of webhook deliveries.
JOB_KIND = "webhook"
#: The ``event`` field of the payload sent for a decided check.
EVENT_CHECK = "check.decided"
#: A live monitor's action on a stream (end it, blur it, warn, a case opened).
EVENT_LIVE = "live.action"
MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class WebhookConfig:
    """Where and how webhooks are sent; validated when built."""

    url: str
    secret: str
    timeout_s: float = 10.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        validate_url(self.url)
        if len(self.secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"{ENV_SECRET} must be at least {MIN_SECRET_CHARS} characters "
                f"(got {len(self.secret)}); generate one with: "
                "python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        if not 0 < self.timeout_s <= 300:
            raise ConfigError(f"{ENV_TIMEOUT} must be between 0 and 300 seconds")
        if not 1 <= self.max_attempts <= 100:
            raise ConfigError(f"{ENV_MAX_ATTEMPTS} must be between 1 and 100")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookConfig | None:
        """The configuration from ``SAFESTREAM_WEBHOOK_*``; None when no URL is set."""
        env = os.environ if environ is None else environ
        url = env.get(ENV_URL, "").strip()
        secret = env.get(ENV_SECRET, "")
        if not url:
            if secret:
                raise ConfigError(
                    f"{ENV_SECRET} is set but {ENV_URL} is not: set both to send webhooks"
                )
            return None
        if not secret:
            raise ConfigError(
                f"{ENV_URL} is set but {ENV_SECRET} is not: webhooks are always signed; "
                f"set {ENV_SECRET} to a random string of at least {MIN_SECRET_CHARS} characters"
            )
        return cls(
            url=url,
            secret=secret,
            timeout_s=_number(env, ENV_TIMEOUT, cls.timeout_s),
            max_attempts=int(_number(env, ENV_MAX_ATTEMPTS, cls.max_attempts, integer=True)),
        )


def _number(env: Mapping[str, str], name: str, default: float, *, integer: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None


def validate_url(url: str) -> None:
    """Raise ConfigError unless ``url`` is an absolute http(s) URL without credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"{ENV_URL} must be an http:// or https:// URL, got scheme "
            f"{parts.scheme or '(none)'!r} in {url[:200]!r}"
        )
    if not parts.hostname:
        raise ConfigError(f"{ENV_URL} has no host: {url[:200]!r}")
    if parts.username or parts.password:
        raise ConfigError(
            f"{ENV_URL} must not carry credentials (user:password@); receivers "
            f"authenticate deliveries by their signature ({ENV_SECRET})"
        )
    if parts.fragment:
        raise ConfigError(f"{ENV_URL} must not have a #fragment: {url[:200]!r}")
    try:
        _ = parts.port
    except ValueError:
        raise ConfigError(f"{ENV_URL} has an invalid port: {url[:200]!r}") from None


# -- signing ----------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``"<timestamp>.<body>"``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is ours over ``timestamp`` and ``body``, and fresh.

    For receivers: pass the raw request body (before JSON parsing) and the
    ``X-Safestream-Timestamp`` and ``X-Safestream-Signature`` headers. A
    timestamp more than ``tolerance_s`` seconds from now is refused (replay
    protection); compare is constant-time.
    """
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature.strip())


# -- the action: build the payload, enqueue the job -----------------------------------


def _utc_iso(value: Any) -> Any:
    """An ISO-8601 time with an offset, re-expressed in UTC (other values as they are)."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return parsed.astimezone(UTC).isoformat() if parsed.tzinfo else value


def build_payload(
    event: ActionEvent, delivery_id: str, review: dict[str, Any] | None
) -> dict[str, Any]:
    """The JSON sent for one decided check: verdict, matches and context, never content."""
    payload = {
        "event": EVENT_CHECK if event.stream is None else EVENT_LIVE,
        "delivery_id": delivery_id,
        "content_id": event.content_id,
        "received_at": event.received_at.astimezone(UTC).isoformat(),
        "verdict": event.verdict,
        "outcome": event.outcome,
        "rule": event.rule,
        "matches": [
            {
                "bank": m.get("bank"),
                "signal_type": m.get("signal_type"),
                "distance_bits": m.get("distance_bits"),
                "threshold_bits": m.get("threshold_bits"),
                "entry_id": m.get("entry_id"),
                "external_id": m.get("external_id"),
                "variant": m.get("variant"),
                "labels": m.get("labels", []),
            }
            for m in event.matches
        ],
        "context": {
            key: _utc_iso(event.context.get(key))
            if key == "client_timestamp"
            else event.context.get(key)
            for key in (
                "account_id",
                "username",
                "profile_url",
                "ip_address",
                "source_port",
                "client_timestamp",
                "surface",
            )
        },
        "review": review,
    }
    if event.stream is not None:
        payload["stream"] = dict(event.stream)
    return payload


class WebhookAction(Action):
    """Queue a signed delivery of the check to the configured URL."""

    name: ClassVar[str] = "webhook"

    def check_config(self, env: ActionEnv) -> None:
        """A policy that uses ``webhook`` needs ``SAFESTREAM_WEBHOOK_URL`` and ``_SECRET``."""
        if env.webhook is None:
            raise ConfigError(
                f"the policy uses the 'webhook' action but {ENV_URL} is not set; "
                f"set {ENV_URL} and {ENV_SECRET}, or remove 'webhook' from the policy"
            )

    def run(
        self, event: ActionEvent, env: ActionEnv, earlier: dict[str, ActionResult]
    ) -> ActionResult:
        """Enqueue the delivery job (idempotent per check)."""
        if env.webhook is None:
            return ActionResult(self.name, "skipped", {"reason": f"{ENV_URL} is not set"})
        key = f"webhook-{event.content_id}"
        review = earlier.get("enqueue_review")
        payload = build_payload(event, key, review.detail if review else None)
        # An open law-enforcement request with a non-disclosure order names this user:
        # the platform must not tell them why (no "your upload matched ..." notice).
        payload["nondisclosure"] = nondisclosure_applies(
            env.jobs.store, identifiers_of(event.context)
        )
        job, _ = env.jobs.enqueue(
            JOB_KIND, payload, idempotency_key=key, max_attempts=env.webhook.max_attempts
        )
        return ActionResult(self.name, "queued", {"job_id": job.id, "delivery_id": key})


# -- delivery (in the worker) -------------------------------------------------------


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: ignore it, our backoff applies


class WebhookSender:
    """The job handler that POSTs a webhook delivery."""

    kind: str = JOB_KIND

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self._parts = urlsplit(config.url)

    def __call__(self, job: Job) -> None:
        """One delivery attempt; raises RetryableJobError or PermanentJobError on failure."""
        body = json.dumps(job.payload, separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "safestream-webhook/1",
            "X-Safestream-Timestamp": timestamp,
            "X-Safestream-Signature": sign(self.config.secret, timestamp, body),
            "X-Safestream-Delivery": job.idempotency_key,
            "Idempotency-Key": job.idempotency_key,
            "X-Safestream-Attempt": str(job.attempts),
        }
        status, retry_after = self._post(body, headers)
        if 200 <= status < 300:
            return
        message = f"webhook receiver answered HTTP {status}"
        # 408 and 429 are the receiver asking us to come back; other 4xx (and
        # redirects, which we never follow) will not change by retrying.
        if status >= 500 or status in (408, 429):
            raise RetryableJobError(message, retry_after_s=retry_after)
        raise PermanentJobError(message)

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, float | None]:
        parts = self._parts
        host = parts.hostname or ""
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                host,
                parts.port,
                timeout=self.config.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=self.config.timeout_s)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read(65536)  # drain a little so the connection closes cleanly
            return response.status, _retry_after(response.getheader("Retry-After"))
        except TimeoutError:
            raise RetryableJobError(
                f"webhook receiver did not answer within {self.config.timeout_s:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise RetryableJobError(
                f"webhook delivery failed: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            conn.close()


__all__ = [
    "EVENT_CHECK",
    "EVENT_LIVE",
    "JOB_KIND",
    "WebhookAction",
    "WebhookConfig",
    "WebhookSender",
    "build_payload",
    "sign",
    "validate_url",
    "verify_signature",
]
