"""Evidence fixtures (defined in evidence_support, shared with the other suites)."""

from evidence_support import clock, evidence, ring  # noqa: F401
