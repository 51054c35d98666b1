"""Report fixtures, shared with tests/cases (see cases_support.py)."""

from cases_support import client, invoke, keys  # noqa: F401
