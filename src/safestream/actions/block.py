"""The ``block`` action: the caller is told to block the content (in the response)."""

from __future__ import annotations

from typing import ClassVar

from safestream.actions.base import Action, ActionEnv, ActionEvent, ActionResult


class BlockAction(Action):
    """Block: synchronous, carried by the response's ``actions``; nothing stored."""

    name: ClassVar[str] = "block"

    def run(
        self, event: ActionEvent, env: ActionEnv, earlier: dict[str, ActionResult]
    ) -> ActionResult:
        """Report the block; the integrator enforces it on its side."""
        return ActionResult(self.name, "done")
