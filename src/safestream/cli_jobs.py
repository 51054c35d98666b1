"""CLI commands for background jobs, workers, webhooks and review items (registered by ``cli``).

This module must not import :mod:`safestream.cli`; ``ctx.obj`` offers
``store()``, ``repo()`` and ``snapshot_dir()``.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import click

from safestream.cli_support import cli_errors

EXIT_ERROR = 2


_errors = cli_errors


def _json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


@click.command("worker")
@click.option("--once", is_flag=True, help="Exit when no job is ready instead of waiting.")
@click.option("--max-jobs", type=click.IntRange(1), default=None, help="Exit after N jobs.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    envvar="SAFESTREAM_WORKER_CONCURRENCY",
    help="Jobs run at once (threads) [env SAFESTREAM_WORKER_CONCURRENCY].",
)
@click.option(
    "--lease-s",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    envvar="SAFESTREAM_JOB_LEASE_S",
    help="A claimed job whose worker died is run again after this [env SAFESTREAM_JOB_LEASE_S].",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01),
    default=1.0,
    show_default=True,
    help="Seconds between polls of an empty queue.",
)
@click.option(
    "--backoff-base-s",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    envvar="SAFESTREAM_JOB_BACKOFF_BASE_S",
    help="Wait after the first failure; doubles each attempt [env SAFESTREAM_JOB_BACKOFF_BASE_S].",
)
@click.option(
    "--backoff-max-s",
    type=click.FloatRange(0),
    default=900.0,
    show_default=True,
    envvar="SAFESTREAM_JOB_BACKOFF_MAX_S",
    help="Longest wait between attempts [env SAFESTREAM_JOB_BACKOFF_MAX_S].",
)
@click.pass_obj
def worker_cmd(
    obj: Any,
    once: bool,
    max_jobs: int | None,
    concurrency: int,
    lease_s: float,
    poll_interval: float,
    backoff_base_s: float,
    backoff_max_s: float,
) -> None:
    """Run background jobs (webhooks, bank imports, batch scans) until SIGTERM/SIGINT.

    A stop signal lets running jobs finish, then exits. Killing a worker
    outright loses nothing: its jobs run again once their lease expires (the
    lease is renewed while a job runs, so long imports and scans keep it).
    """
    from safestream.actions.webhook import WebhookSender
    from safestream.errors import ConfigError
    from safestream.jobs.base import Backoff
    from safestream.jobs.registry import configured_handlers, schedule_periodic
    from safestream.jobs.worker import Worker, WorkerOptions
    from safestream.store.jobs import JobRepository

    with _errors():
        handlers = configured_handlers(store=obj.store())
        for handler in handlers:
            if isinstance(handler, WebhookSender) and handler.config.timeout_s >= lease_s / 2:
                raise ConfigError(
                    f"the webhook timeout ({handler.config.timeout_s:g} s) must be under half "
                    f"the job lease ({lease_s:g} s), or a slow delivery could be sent twice "
                    "at once; raise --lease-s or lower SAFESTREAM_WEBHOOK_TIMEOUT_S"
                )
        # Periodic jobs (escalations, evidence purge) each enqueue their next run; seed
        # the chains here so a worker alone keeps deadlines watched, without cron.
        schedule_periodic(handlers)
        options = WorkerOptions(
            lease_s=lease_s,
            poll_interval_s=poll_interval,
            concurrency=concurrency,
            once=once,
            max_jobs=max_jobs,
            backoff=Backoff(backoff_base_s, backoff_max_s),
        )
        worker = Worker(JobRepository(obj.store()), handlers, options)

    def _stop(signum: int, _frame: Any) -> None:
        click.echo(f"signal {signum}: finishing running jobs, then stopping", err=True)
        worker.stop()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stats = worker.run()
    finally:
        for sig, previous_handler in previous.items():
            signal.signal(sig, previous_handler)
    _json({"done": stats.done, "retried": stats.retried, "dead": stats.dead, "lost": stats.lost})


@click.group("jobs")
def jobs_group() -> None:
    """Inspect the background job table."""


@jobs_group.command("list")
@click.option("--status", type=click.Choice(["queued", "running", "done", "dead"]), default=None)
@click.option("--kind", default=None, help="Only jobs of this kind (webhook, bank_import, ...).")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.pass_obj
def jobs_list(obj: Any, status: str | None, kind: str | None, limit: int) -> None:
    """List jobs, newest first (payloads are not shown)."""
    from safestream.store.jobs import JobRepository

    with _errors():
        repo = JobRepository(obj.store())
        kinds = (kind,) if kind else None
        jobs = repo.recent(status, limit, kinds=kinds)
        _json({"counts": repo.counts(kinds), "jobs": [j.to_dict() for j in jobs]})


@jobs_group.command("show")
@click.argument("job_id", type=int)
@click.pass_obj
def jobs_show(obj: Any, job_id: int) -> None:
    """One job: status, attempts, last error and result."""
    from safestream.store.jobs import JobRepository

    with _errors():
        _json(JobRepository(obj.store()).get(job_id).to_dict())


@click.group("webhooks")
def webhooks_group() -> None:
    """Webhook deliveries that failed for good: list and replay them."""


@webhooks_group.command("dead-letters")
@click.option("--all", "include_replayed", is_flag=True, help="Include replayed ones.")
@click.pass_obj
def webhooks_dead_letters(obj: Any, include_replayed: bool) -> None:
    """List dead-lettered deliveries (not yet replayed, unless --all)."""
    from safestream.store.jobs import JobRepository

    with _errors():
        repo = JobRepository(obj.store())
        _json([d.to_dict() for d in repo.dead_letters(include_replayed=include_replayed)])


@webhooks_group.command("replay")
@click.argument("dead_letter_id", type=int, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter not replayed.")
@click.pass_obj
def webhooks_replay(obj: Any, dead_letter_id: int | None, replay_all: bool) -> None:
    """Queue dead-lettered deliveries again (same delivery id; fresh attempts)."""
    from safestream.errors import InputError
    from safestream.store.jobs import JobRepository

    with _errors():
        if (dead_letter_id is None) == (not replay_all):
            raise InputError("give a dead-letter ID or --all (not both)")
        repo = JobRepository(obj.store())
        ids = [d.id for d in repo.dead_letters()] if replay_all else [dead_letter_id or 0]
        _json({"replayed": [repo.replay(i).to_dict() for i in ids]})


@click.group("reviews")
def reviews_group() -> None:
    """Review items opened by the ``enqueue_review`` action."""


@reviews_group.command("list")
@click.option("--account", "account_id", default=None, help="Only this account.")
@click.option("--all", "all_states", is_flag=True, help="Every status, not only open ones.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.pass_obj
def reviews_list(obj: Any, account_id: str | None, all_states: bool, limit: int) -> None:
    """List review items, most recently active first."""
    from safestream.store.reviews import ReviewRepository

    with _errors():
        repo = ReviewRepository(obj.store())
        items = repo.list(account_id=account_id, status=None if all_states else "open", limit=limit)
        _json([i.to_dict() for i in items])


#: Commands added to the ``safestream`` group.
COMMANDS: list[click.Command] = [worker_cmd, jobs_group, webhooks_group, reviews_group]
