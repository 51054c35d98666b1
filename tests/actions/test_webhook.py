"""Webhooks: signing, configuration, and delivery to a real receiver with retries,
dead letters and replay."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from safestream.actions.webhook import (
    WebhookConfig,
    WebhookSender,
    sign,
    verify_signature,
)
from safestream.cli import cli
from safestream.errors import ConfigError
from safestream.jobs.base import Backoff
from safestream.jobs.worker import Worker, WorkerOptions
from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from webhook_support import SECRET, Receiver, running_receiver, store_url

FAST = WorkerOptions(lease_s=30, poll_interval_s=0.05, once=True, backoff=Backoff(0, 0))


def _worker(store: Store, url: str, options: WorkerOptions = FAST) -> Worker:
    sender = WebhookSender(WebhookConfig(url=url, secret=SECRET, timeout_s=5))
    return Worker(JobRepository(store), [sender], options)


def _enqueue(store: Store, key: str = "webhook-1", max_attempts: int = 8) -> int:
    job, _ = JobRepository(store).enqueue(
        "webhook",
        {"event": "check.decided", "content_id": "c1", "context": {"source_port": 51234}},
        idempotency_key=key,
        max_attempts=max_attempts,
    )
    return job.id


# -- signing ---------------------------------------------------------------------


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"a":1}'
    ts = str(int(time.time()))
    sig = sign(SECRET, ts, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify_signature(SECRET, ts, body, sig)
    assert not verify_signature(SECRET, ts, body + b" ", sig)  # body changed
    assert not verify_signature("another-secret-of-some-length", ts, body, sig)
    assert not verify_signature(SECRET, str(int(ts) + 1), body, sig)  # timestamp changed
    old = str(int(time.time()) - 301)
    assert not verify_signature(SECRET, old, body, sign(SECRET, old, body))  # stale
    assert verify_signature(SECRET, old, body, sign(SECRET, old, body), tolerance_s=600)
    assert not verify_signature(SECRET, "yesterday", body, sig)


# -- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SAFESTREAM_WEBHOOK_URL": "ftp://example.com/x", "SAFESTREAM_WEBHOOK_SECRET": SECRET},
            "must be an http:// or https:// URL, got scheme 'ftp'",
        ),
        (
            {"SAFESTREAM_WEBHOOK_URL": "example.com/hook", "SAFESTREAM_WEBHOOK_SECRET": SECRET},
            "got scheme '(none)'",
        ),
        (
            {"SAFESTREAM_WEBHOOK_URL": "https://example.com/hook"},
            "SAFESTREAM_WEBHOOK_SECRET is not",
        ),
        ({"SAFESTREAM_WEBHOOK_SECRET": SECRET}, "SAFESTREAM_WEBHOOK_URL is not"),
        (
            {
                "SAFESTREAM_WEBHOOK_URL": "https://example.com/",
                "SAFESTREAM_WEBHOOK_SECRET": "short",
            },
            "at least 16 characters",
        ),
        (
            {
                "SAFESTREAM_WEBHOOK_URL": "https://user:pw@example.com/",
                "SAFESTREAM_WEBHOOK_SECRET": SECRET,
            },
            "must not carry credentials",
        ),
        (
            {
                "SAFESTREAM_WEBHOOK_URL": "https://example.com/",
                "SAFESTREAM_WEBHOOK_SECRET": SECRET,
                "SAFESTREAM_WEBHOOK_TIMEOUT_S": "soon",
            },
            "SAFESTREAM_WEBHOOK_TIMEOUT_S must be a number",
        ),
    ],
)
def test_bad_webhook_config_is_refused_precisely(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        WebhookConfig.from_env(env)
    assert message in str(info.value)


def test_webhook_config_from_env() -> None:
    assert WebhookConfig.from_env({}) is None
    config = WebhookConfig.from_env(
        {
            "SAFESTREAM_WEBHOOK_URL": "https://hooks.example.com/safestream?x=1",
            "SAFESTREAM_WEBHOOK_SECRET": SECRET,
            "SAFESTREAM_WEBHOOK_MAX_ATTEMPTS": "3",
        }
    )
    assert config is not None and config.max_attempts == 3 and config.timeout_s == 10


def test_worker_command_refuses_bad_config_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFESTREAM_WEBHOOK_URL", "file:///etc/passwd")
    monkeypatch.setenv("SAFESTREAM_WEBHOOK_SECRET", SECRET)
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "worker", "--once"])
    assert result.exit_code == 2
    assert "SAFESTREAM_WEBHOOK_URL must be an http:// or https:// URL" in result.output
    monkeypatch.delenv("SAFESTREAM_WEBHOOK_URL")
    monkeypatch.delenv("SAFESTREAM_WEBHOOK_SECRET")
    # Without webhooks the worker still runs bank imports and batch scans.
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "worker", "--once"])
    assert result.exit_code == 0, result.output


# -- delivery ---------------------------------------------------------------------


def test_delivery_is_signed_and_carries_the_delivery_id(store: Store) -> None:
    job_id = _enqueue(store)
    with running_receiver() as rec:
        stats = _worker(store, rec.url).run()
    assert stats.done == 1
    [request] = rec.requests
    assert request["signature_ok"]
    assert request["headers"]["x-safestream-delivery"] == "webhook-1"
    assert request["headers"]["idempotency-key"] == "webhook-1"
    assert request["headers"]["content-type"] == "application/json"
    assert rec.deliveries["webhook-1"]["context"]["source_port"] == 51234
    assert JobRepository(store).get(job_id).status == "done"


def test_server_errors_are_retried_until_delivered(store: Store) -> None:
    job_id = _enqueue(store)
    with running_receiver(Receiver(fail_first=2, fail_status=503)) as rec:
        stats = _worker(store, rec.url).run()
    assert (stats.done, stats.retried, stats.dead) == (1, 2, 0)
    assert len(rec.requests) == 3 and all(r["signature_ok"] for r in rec.requests)
    assert {r["headers"]["x-safestream-delivery"] for r in rec.requests} == {"webhook-1"}
    assert list(rec.deliveries) == ["webhook-1"] and rec.duplicates == 0
    job = JobRepository(store).get(job_id)
    assert (job.status, job.attempts) == ("done", 3)


def test_rate_limited_is_retried_but_client_error_is_dead_at_once(store: Store) -> None:
    _enqueue(store, "webhook-429")
    with running_receiver(Receiver(fail_first=1, fail_status=429)) as rec:
        assert _worker(store, rec.url).run().done == 1
    jobs = JobRepository(store)
    bad = _enqueue(store, "webhook-400")
    with running_receiver(Receiver(fail_first=100, fail_status=400)) as rec:
        stats = _worker(store, rec.url).run()
    assert (stats.done, stats.dead) == (0, 1) and len(rec.requests) == 1
    [dead] = jobs.dead_letters()
    assert dead.job_id == bad and dead.last_error == "webhook receiver answered HTTP 400"


def test_unreachable_receiver_is_retried_then_dead_lettered_then_replayed(
    store: Store, tmp_path: Path
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    job_id = _enqueue(store, max_attempts=3)
    stats = _worker(store, f"http://127.0.0.1:{closed_port}/hook").run()
    assert (stats.retried, stats.dead) == (2, 1)
    jobs = JobRepository(store)
    [dead] = jobs.dead_letters()
    assert dead.attempts == 3 and "gave up after 3 attempts" in (dead.last_error or "")
    assert "ConnectionRefusedError" in (dead.last_error or "")

    runner = CliRunner()
    url = store_url(store)
    listed = runner.invoke(cli, ["--database-url", url, "webhooks", "dead-letters"])
    assert listed.exit_code == 0, listed.output
    assert [d["job_id"] for d in json.loads(listed.output)] == [job_id]
    replayed = runner.invoke(cli, ["--database-url", url, "webhooks", "replay", "--all"])
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.output)["replayed"][0]["status"] == "queued"
    with running_receiver() as rec:
        assert _worker(store, rec.url).run().done == 1
    assert list(rec.deliveries) == ["webhook-1"]
    assert jobs.dead_letters() == [] and jobs.get(job_id).status == "done"
    again = runner.invoke(cli, ["--database-url", url, "webhooks", "replay", str(dead.id)])
    assert again.exit_code == 2 and "already replayed" in again.output


def test_max_jobs_limits_a_worker_and_concurrency_delivers_each_once(store: Store) -> None:
    for i in range(12):
        _enqueue(store, f"webhook-{i}")
    with running_receiver() as rec:
        one = _worker(
            store, rec.url, WorkerOptions(lease_s=30, poll_interval_s=0.05, max_jobs=2)
        ).run()
        assert one.done == 2
        rest = _worker(
            store,
            rec.url,
            WorkerOptions(lease_s=30, poll_interval_s=0.05, once=True, concurrency=4),
        ).run()
    assert rest.done == 10
    assert len(rec.requests) == 12 and len(rec.deliveries) == 12 and rec.duplicates == 0
