"""Webhook payloads say when a non-disclosure order covers the user, so the platform stays silent."""

from __future__ import annotations

from datetime import UTC, datetime

from evidence_support import Clock
from requests_support import new_request
from safestream.actions.base import ActionEnv, ActionEvent
from safestream.actions.webhook import WebhookAction, WebhookConfig
from safestream.requests.model import Status
from safestream.requests.service import RequestService
from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from safestream.store.reviews import ReviewRepository


def _event(content_id: str, **context: object) -> ActionEvent:
    return ActionEvent(
        content_id=content_id,
        received_at=datetime(2026, 3, 1, 9, 5, tzinfo=UTC),
        verdict="block",
        outcome="match",
        rule="known",
        matches=[],
        context=dict(context),
    )


def test_webhook_payload_flags_users_under_a_nondisclosure_order(store: Store) -> None:
    clock = Clock()
    requests = RequestService(store, clock=clock)
    ndo = requests.create(
        new_request(clock.now, identifiers=["acct-ndo", "198.51.100.7"], non_disclosure=True),
        actor="test",
    )
    jobs = JobRepository(store)
    env = ActionEnv(
        reviews=ReviewRepository(store),
        jobs=jobs,
        webhook=WebhookConfig("http://127.0.0.1:9/hook", "s" * 32),
    )
    action = WebhookAction()

    def payload(event: ActionEvent) -> dict[str, object]:
        result = action.run(event, env, {})
        return jobs.get(int(result.detail["job_id"])).payload

    assert payload(_event("c1", account_id="ACCT-NDO"))["nondisclosure"] is True
    assert payload(_event("c2", account_id="other", ip_address="198.51.100.7"))["nondisclosure"]
    assert payload(_event("c3", account_id="other", username="u"))["nondisclosure"] is False
    # Once the request is answered, the order no longer holds the platform silent here.
    for status in (Status.VERIFIED, Status.IN_PROGRESS, Status.RESPONDED):
        requests.transition(ndo.id, status, actor="test")
    assert payload(_event("c4", account_id="acct-ndo"))["nondisclosure"] is False
