"""The ``evidence_purge`` job: destroy evidence whose holds all expired (audited).

Enqueue it on a schedule (``safestream evidence purge --enqueue`` from cron);
running it twice is harmless. Purging needs no key: it deletes ciphertext.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safestream.evidence.store import EvidenceStore, evidence_dir
from safestream.jobs.base import JobContext
from safestream.store.db import Store
from safestream.store.jobs import Job

JOB_KIND = "evidence_purge"


class EvidencePurgeHandler:
    """Runs evidence purges in the worker."""

    kind: str = JOB_KIND

    def __init__(self, evidence: EvidenceStore) -> None:
        self.evidence = evidence

    @classmethod
    def from_env(
        cls, store: Store, environ: Mapping[str, str] | None = None
    ) -> EvidencePurgeHandler:
        """Over the configured evidence directory."""
        return cls(EvidenceStore(store, evidence_dir(environ), None))

    def run(self, job: Job, ctx: JobContext) -> dict[str, Any] | None:
        """Purge once; the result lists the purged object ids."""
        ctx.check()
        purged = self.evidence.purge_expired()
        return {"purged": len(purged), "evidence_ids": purged[:1000]}
