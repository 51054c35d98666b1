"""Run a decision's actions for one check, in the request."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from safestream.actions.base import ActionEnv, ActionEvent, ActionResult
from safestream.actions.registry import ACTIONS

log = logging.getLogger(__name__)


class ActionRunner:
    """Runs actions in the policy's order; one failing action does not stop the others.

    ``block`` never fails (it is the response itself), so an outage of the
    review table or the job queue cannot turn a block into an allow.
    """

    def __init__(self, env: ActionEnv) -> None:
        self.env = env

    def check_config(self, names: Iterable[str]) -> None:
        """Raise ConfigError when an action the policy uses is not configured."""
        for name in sorted(set(names)):
            ACTIONS[name]().check_config(self.env)

    def run(self, names: Iterable[str], event: ActionEvent) -> list[ActionResult]:
        """Run each named action once, in order; return what each did."""
        done: dict[str, ActionResult] = {}
        for name in names:
            if name in done:
                continue
            cls = ACTIONS.get(name)
            if cls is None:
                done[name] = ActionResult(name, "failed", {"error": "unknown action"})
                continue
            try:
                done[name] = cls().run(event, self.env, dict(done))
            except Exception as exc:  # one failing action must not hide the verdict
                log.exception(
                    "action failed", extra={"action": name, "content_id": event.content_id}
                )
                done[name] = ActionResult(name, "failed", {"error": type(exc).__name__})
        return list(done.values())
