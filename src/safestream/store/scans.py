"""SQL of batch-scan results: one row per job and file, paged reads, counts.

A file that matched (or that a classifier flagged) also gets a check record
(``surface="scan"``) in the same transaction as its result, so the cases
ingester groups it into a case like an upload; both are written exactly once
per job and file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from safestream.store.db import Store
from safestream.store.models import CheckRow, ScanResultRow, utcnow

RESULTS = cast(Table, ScanResultRow.__table__)
CHECKS = cast(Table, CheckRow.__table__)


def path_digest(path: str) -> str:
    """SHA-256 of a path (the unique key of a file within a scan job)."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class ScanResult:
    """The stored result of one scanned file."""

    id: int
    job_id: int
    path: str
    outcome: str
    record: dict[str, Any]
    scanned_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the file's scan record plus its id and time."""
        return {
            **self.record,
            "id": self.id,
            "path": self.path,
            "outcome": self.outcome,
            "scanned_at": self.scanned_at.isoformat(),
        }


class ScanResultRepository:
    """Per-file results of batch-scan jobs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self,
        job_id: int,
        records: Iterable[tuple[str, str, dict[str, Any]]],
        *,
        checks: dict[str, dict[str, Any]] | None = None,
    ) -> int:
        """Store ``(path, outcome, record)`` rows in one transaction; returns how many were new.

        A path the job already has is skipped (a resumed or repeated attempt),
        never stored twice. ``checks`` maps a path to the fields of its check
        record (a detection); it is stored in the same transaction, only when
        the path's result is new, and never twice for one ``content_id``.
        """
        now = utcnow()
        rows = [
            {
                "job_id": job_id,
                "path": path,
                "path_sha256": path_digest(path),
                "outcome": outcome,
                "record": record,
                "scanned_at": now,
            }
            for path, outcome, record in records
        ]
        if not rows:
            return 0
        dialect = postgresql if self.store.dialect == "postgresql" else sqlite
        stmt = (
            dialect.insert(RESULTS)
            .on_conflict_do_nothing(index_elements=["job_id", "path_sha256"])
            .returning(RESULTS.c.path_sha256)
        )
        with self.store.engine.begin() as conn:
            # RETURNING counts the rows really inserted (rowcount of an
            # executemany is not reliable across drivers).
            new = {str(d) for d in conn.execute(stmt, rows).scalars()}
            detections = [
                {"received_at": now, **fields}
                for path, fields in (checks or {}).items()
                if path_digest(path) in new
            ]
            if detections:
                conn.execute(
                    dialect.insert(CHECKS).on_conflict_do_nothing(index_elements=["content_id"]),
                    detections,
                )
            return len(new)

    def done_digests(self, job_id: int) -> set[str]:
        """Path digests of the files this job has results for."""
        with self.store.engine.connect() as conn:
            return set(
                conn.execute(
                    select(RESULTS.c.path_sha256).where(RESULTS.c.job_id == job_id)
                ).scalars()
            )

    def counts(self, job_id: int) -> dict[str, int]:
        """Files per outcome of one job."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(RESULTS.c.outcome, func.count())
                .where(RESULTS.c.job_id == job_id)
                .group_by(RESULTS.c.outcome)
            )
            return {str(outcome): int(n) for outcome, n in rows}

    def page(
        self, job_id: int, *, outcome: str | None = None, after_id: int = 0, limit: int = 100
    ) -> list[ScanResult]:
        """Results of one job in id order, optionally of one outcome."""
        query = (
            select(RESULTS)
            .where(RESULTS.c.job_id == job_id, RESULTS.c.id > after_id)
            .order_by(RESULTS.c.id)
            .limit(limit)
        )
        if outcome is not None:
            query = query.where(RESULTS.c.outcome == outcome)
        with self.store.engine.connect() as conn:
            return [
                ScanResult(
                    id=m["id"],
                    job_id=m["job_id"],
                    path=m["path"],
                    outcome=m["outcome"],
                    record=m["record"],
                    scanned_at=m["scanned_at"],
                )
                for m in (r._mapping for r in conn.execute(query))
            ]


__all__ = ["ScanResult", "ScanResultRepository", "path_digest"]
