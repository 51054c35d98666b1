"""The ``obscure`` action: the caller is told to show only an obscured copy.

Like ``block`` it is an instruction carried by the response; the obscured
pixels themselves come from ``POST /v1/obscure`` (or, on a device or in the
live monitor, from :func:`safestream.classify.obscure` applied locally), so a
check response never carries image data.
"""

from __future__ import annotations

from typing import ClassVar

from safestream.actions.base import Action, ActionEnv, ActionEvent, ActionResult


class ObscureAction(Action):
    """Obscure: synchronous; the result names the endpoint that renders the copy."""

    name: ClassVar[str] = "obscure"

    def run(
        self, event: ActionEvent, env: ActionEnv, earlier: dict[str, ActionResult]
    ) -> ActionResult:
        """Report the instruction; the integrator displays the obscured copy."""
        return ActionResult(self.name, "done", {"render": "POST /v1/obscure"})
