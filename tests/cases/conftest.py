"""Case and report fixtures, shared with tests/reports (see cases_support.py)."""

from cases_support import client, invoke, keys  # noqa: F401
