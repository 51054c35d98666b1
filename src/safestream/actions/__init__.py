"""Action plug-ins: what is done about a verdict (block, enqueue for review, webhook)."""

from safestream.actions.base import Action, ActionEnv, ActionEvent, ActionResult
from safestream.actions.registry import ACTIONS, register

__all__ = ["ACTIONS", "Action", "ActionEnv", "ActionEvent", "ActionResult", "register"]
