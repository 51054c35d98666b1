"""The ``enqueue_review`` action: open (or count a repeat on) a review item."""

from __future__ import annotations

from typing import ClassVar

from safestream.actions.base import Action, ActionEnv, ActionEvent, ActionResult


class EnqueueReviewAction(Action):
    """Put the check in front of a reviewer, grouping floods of one account."""

    name: ClassVar[str] = "enqueue_review"

    def run(
        self, event: ActionEvent, env: ActionEnv, earlier: dict[str, ActionResult]
    ) -> ActionResult:
        """Write the review item in the request's own time (it is one small transaction)."""
        added = env.reviews.add(
            content_id=event.content_id,
            account_id=event.context.get("account_id"),
            verdict=event.verdict,
            rule=event.rule,
            matches=event.matches,
            context=event.context,
            window_s=event.flood_window_s,
            now=event.received_at,
        )
        return ActionResult(
            self.name,
            "done",
            {
                "review_id": added.item.id,
                "new_incident": added.created,
                "match_count": added.item.match_count,
            },
        )
