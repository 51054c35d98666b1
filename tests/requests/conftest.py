"""Request fixtures: the evidence ones, shared."""

from evidence_support import clock, evidence, ring  # noqa: F401
