"""How fast cases move: detected -> reviewed -> submitted -> finished.

The times come from what is already stored: a case's first detection and its
review (``cases``), the first accepted ``/submit`` and the ``/finish`` of its
report (``report_submissions``), or, for a report marked submitted by hand,
the time its case became ``reported``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median
from typing import Any

from safestream.store.cases import timeline_rows
from safestream.store.db import Store

#: (name, from, to) of each stage, and the whole way.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("detected_to_reviewed", "detected_at", "reviewed_at"),
    ("reviewed_to_submitted", "reviewed_at", "submitted_at"),
    ("submitted_to_finished", "submitted_at", "finished_at"),
    ("detected_to_finished", "detected_at", "finished_at"),
)
WITHIN = timedelta(hours=24)


def stage_stats(rows: list[dict[str, Any]], *, within: timedelta = WITHIN) -> dict[str, Any]:
    """Per stage: how many cases went through it, the median seconds, the share within ``within``.

    Pure: rows of ``detected_at``/``reviewed_at``/``submitted_at``/``finished_at``
    (None where a case has not got there) in, statistics out. A negative
    duration (clock skew between stages) counts as zero.
    """
    out: dict[str, Any] = {}
    for name, start, end in STAGES:
        seconds = [
            max(0.0, (b - a).total_seconds())
            for r in rows
            if isinstance(a := r.get(start), datetime) and isinstance(b := r.get(end), datetime)
        ]
        out[name] = {
            "count": len(seconds),
            "median_s": median(seconds) if seconds else None,
            "within_24h_share": (
                sum(1 for s in seconds if s <= within.total_seconds()) / len(seconds)
                if seconds
                else None
            ),
        }
    return out


def report_stats(store: Store) -> dict[str, Any]:
    """Timeliness of every case: per-stage medians and the share within 24 hours."""
    rows = timeline_rows(store)
    return {
        "cases": len(rows),
        "stages": stage_stats(rows),
        "timelines": [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in rows
        ],
    }


__all__ = ["STAGES", "WITHIN", "report_stats", "stage_stats"]
