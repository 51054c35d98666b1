"""CLI commands for background jobs, workers and webhooks (registered by ``cli``).

This module must not import :mod:`safestream.cli`; ``ctx.obj`` offers
``store()``, ``repo()`` and ``snapshot_dir()``.
"""

from __future__ import annotations

import click

#: Commands added to the ``safestream`` group.
COMMANDS: list[click.Command] = []
