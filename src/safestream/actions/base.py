"""The action plug-in contract: what an action receives and what it reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from safestream.actions.webhook import WebhookConfig
    from safestream.store.jobs import JobRepository
    from safestream.store.reviews import ReviewRepository

ActionStatus = Literal["done", "queued", "skipped", "failed"]


@dataclass(frozen=True)
class ActionEvent:
    """One decided check, as actions see it (never the content itself)."""

    content_id: str
    received_at: datetime
    verdict: str
    outcome: str
    rule: str | None
    #: ``Match.to_dict()`` of each match.
    matches: list[dict[str, Any]]
    #: ``ContentContext.to_dict()``.
    context: dict[str, Any]
    #: Flood control: repeats of one account within this many seconds are one incident.
    flood_window_s: float = 3600.0
    #: A live-stream action (``stream_id``, ``action``, ``sample_times_s``), or None
    #: for a checked upload.
    stream: dict[str, Any] | None = None


@dataclass(frozen=True)
class ActionResult:
    """What one action did."""

    action: str
    status: ActionStatus
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"action": self.action, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class ActionEnv:
    """What actions may use: repositories and server-side configuration."""

    reviews: ReviewRepository
    jobs: JobRepository
    webhook: WebhookConfig | None = None


class Action(ABC):
    """An action plug-in: one class, one entry in :mod:`safestream.actions.registry`.

    ``run`` is called inside the request that produced the verdict, so it must
    be quick: anything slow or remote (an HTTP call) is enqueued as a job.
    """

    #: The name policy rules use.
    name: ClassVar[str]

    @abstractmethod
    def run(
        self, event: ActionEvent, env: ActionEnv, earlier: dict[str, ActionResult]
    ) -> ActionResult:
        """Do the action for ``event``; ``earlier`` holds the results of actions run before."""

    def check_config(self, env: ActionEnv) -> None:  # noqa: B027 - optional hook
        """Raise ConfigError when the server is not configured for this action."""
