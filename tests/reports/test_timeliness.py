"""Timeliness: per-stage medians and the share within 24 hours (pure and over the store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cases_support import T0, record_check
from safestream.cases.model import CaseConfig
from safestream.cases.service import CaseService
from safestream.reports.build import BuildOptions
from safestream.reports.model import Contact, Reporter
from safestream.reports.service import ReportService
from safestream.reports.timeliness import report_stats, stage_stats
from safestream.store.db import Store

D = datetime(2026, 1, 1, tzinfo=UTC)


def row(review_h: float | None, submit_h: float | None, finish_h: float | None) -> dict[str, Any]:
    def at(h: float | None) -> datetime | None:
        return None if h is None else D + timedelta(hours=h)

    return {
        "detected_at": D,
        "reviewed_at": at(review_h),
        "submitted_at": at(submit_h),
        "finished_at": at(finish_h),
    }


def test_stage_medians_and_share_within_a_day() -> None:
    rows = [row(1, 2, 2.5), row(3, 30, 31), row(10, None, None), row(None, None, None)]
    s = stage_stats(rows)
    assert s["detected_to_reviewed"] == {
        "count": 3,
        "median_s": 3 * 3600.0,
        "within_24h_share": 1.0,
    }
    assert s["reviewed_to_submitted"]["count"] == 2
    assert s["reviewed_to_submitted"]["median_s"] == (3600 + 27 * 3600) / 2
    assert s["reviewed_to_submitted"]["within_24h_share"] == 0.5
    assert s["submitted_to_finished"]["median_s"] == 0.75 * 3600
    assert s["detected_to_finished"]["within_24h_share"] == 0.5
    empty = stage_stats([])
    assert empty["detected_to_reviewed"] == {
        "count": 0,
        "median_s": None,
        "within_24h_share": None,
    }
    # exactly 24 h counts as within; clock skew counts as zero, not negative
    edge = stage_stats([row(24, 23, 23)])
    assert edge["detected_to_reviewed"]["within_24h_share"] == 1.0
    assert edge["reviewed_to_submitted"]["median_s"] == 0.0


def test_stats_from_cases_marked_submitted_by_hand(store: Store) -> None:
    record_check(store, seed=1, at=T0)
    record_check(store, seed=2, account="acct-2", at=T0)
    cases = CaseService(store, CaseConfig(), clock=lambda: T0)
    cases.sync()
    first, second = sorted(c.id for c in cases.repo.list())
    for cid in (first, second):
        cases.decide(cid, "in_review", reason_code="assigned", actor="r")
    cases.decide(first, "confirmed", reason_code="known_material_confirmed", actor="r")
    cases.decide(second, "dismissed", reason_code="false_positive", actor="r")
    rs = ReportService(cases)
    reporter = Reporter(organisation="Example", contact=Contact(name="A B", email="a@example.org"))
    stored = rs.build(first, BuildOptions(reporter=reporter), actor="le")
    rs.mark_submitted(stored.id, actor="le", reference="TIP-1", override_reason="test run")
    stats = report_stats(store)
    assert stats["cases"] == 2
    by_case = {t["case_id"]: t for t in stats["timelines"]}
    c1 = cases.get(first)
    assert by_case[first]["submitted_at"] == c1.reported_at.isoformat()  # type: ignore[union-attr]
    assert by_case[first]["finished_at"] == c1.reported_at.isoformat()  # type: ignore[union-attr]
    assert by_case[first]["report_ids"] == [stored.id]
    assert by_case[second]["submitted_at"] is None and by_case[second]["reviewed_at"]
    assert stats["stages"]["detected_to_reviewed"]["count"] == 2
    assert stats["stages"]["detected_to_finished"]["count"] == 1
