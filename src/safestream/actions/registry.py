"""The action registry: the one place that names the action plug-ins.

A new action is one :class:`~safestream.actions.base.Action` subclass plus one
entry here; the policy accepts exactly these names (``KNOWN_ACTIONS`` in
:mod:`safestream.engine.policy` is a live view of this mapping). This module
imports nothing that talks SQL, so the engine may depend on it.
"""

from __future__ import annotations

from safestream.actions.base import Action
from safestream.actions.block import BlockAction
from safestream.actions.obscure import ObscureAction
from safestream.actions.review import EnqueueReviewAction
from safestream.actions.webhook import WebhookAction

#: Action name -> plug-in class.
ACTIONS: dict[str, type[Action]] = {
    cls.name: cls for cls in (BlockAction, EnqueueReviewAction, ObscureAction, WebhookAction)
}


def register(cls: type[Action]) -> type[Action]:
    """Add an action plug-in (usable as a class decorator); names are unique."""
    if cls.name in ACTIONS and ACTIONS[cls.name] is not cls:
        raise ValueError(f"an action named {cls.name!r} is already registered")
    ACTIONS[cls.name] = cls
    return cls
