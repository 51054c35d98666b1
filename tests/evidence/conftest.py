"""Evidence fixtures (defined in evidence_support, shared with the other suites)."""

from evidence_support import (  # noqa: F401
    any_evidence,
    backend,
    clock,
    evidence,
    moto_endpoint,
    ring,
)
