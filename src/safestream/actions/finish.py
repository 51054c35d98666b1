"""Finish a check: decide by the policy, keep the check record, run the actions.

One path for every way content is checked (an image in ``POST /v1/check``, a short
video there, a long video in its ``video_check`` job), so they record and act alike
and answer with the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from safestream.actions.base import ActionEvent
from safestream.actions.runner import ActionRunner
from safestream.engine.policy import Policy
from safestream.engine.verdict import ContentContext, Verdict
from safestream.errors import NotFoundError
from safestream.requests.nondisclosure import identifiers_of, nondisclosure_applies
from safestream.store.service import CheckRepository


@dataclass(frozen=True)
class CheckSinks:
    """Where a finished check goes: its record, the policy and the actions."""

    checks: CheckRepository
    policy: Policy
    actions: ActionRunner


def finish_check(
    verdict: Verdict,
    body: dict[str, Any],
    sinks: CheckSinks,
    *,
    content_id: str,
    context: ContentContext,
    api_key_id: int | None,
    received_at: datetime | None = None,
    once: bool = False,
) -> dict[str, Any]:
    """Decide, record the check and run the actions; the answer's common fields.

    ``body`` is the verdict as a dict (``signals``, ``matches``, ``suppressed``,
    ``reasons``). With ``once`` the record is written only if ``content_id`` has
    none yet (a retried job). ``nondisclosure`` is true when the content is not
    allowed and an open law-enforcement request under a non-disclosure order names
    the user: the platform must not tell them why.
    """
    decision = sinks.policy.decide(verdict, context.surface)
    if once:
        try:
            sinks.checks.get(content_id)
        except NotFoundError:
            once = False
    if not once:
        sinks.checks.record(
            content_id=content_id,
            account_id=context.account_id,
            username=context.username,
            profile_url=context.profile_url,
            ip_address=context.ip_address,
            source_port=context.source_port,
            client_timestamp=context.client_timestamp,
            surface=context.surface,
            api_key_id=api_key_id,
            outcome=verdict.outcome,
            signals=body["signals"],
            matches=body["matches"],
            reasons=body["reasons"],
            scores=verdict.scores,
        )
    # block is the answer itself; enqueue_review writes its item now; webhook only
    # enqueues a job (no network call inside a request).
    event = ActionEvent(
        content_id=content_id,
        received_at=received_at or datetime.now(UTC),
        verdict=decision.verdict,
        outcome=verdict.outcome,
        rule=decision.rule,
        matches=body["matches"],
        context={
            **context.to_dict(),
            # Investigators get UTC everywhere (the record keeps the same instant).
            "client_timestamp": (
                context.client_timestamp.astimezone(UTC).isoformat()
                if context.client_timestamp
                else None
            ),
        },
        flood_window_s=sinks.policy.flood_window_s,
    )
    results = sinks.actions.run(decision.actions, event) if decision.actions else []
    return {
        "content_id": content_id,
        "verdict": decision.verdict,
        "outcome": verdict.outcome,
        "actions": [r.action for r in results if r.status in ("done", "queued")],
        "action_results": [r.to_dict() for r in results],
        "matches": body["matches"],
        "suppressed": body["suppressed"],
        "reasons": body["reasons"] + ([f"policy rule {decision.rule!r}"] if decision.rule else []),
        "signals": body["signals"],
        "scores": verdict.scores,
        "nondisclosure": decision.verdict != "allow"
        and nondisclosure_applies(sinks.checks.store, identifiers_of(context)),
    }


__all__ = ["CheckSinks", "finish_check"]
