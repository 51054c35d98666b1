"""What every ``safestream`` CLI module shares: exit statuses and error reporting."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from safestream.errors import SafestreamError

#: Exit statuses: 0 fine, 1 something matched / was flagged, 2 an error (bad input).
EXIT_OK, EXIT_MATCH, EXIT_ERROR = 0, 1, 2


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn our errors into ``error: ...`` on stderr and exit status 2."""
    try:
        yield
    except SafestreamError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
