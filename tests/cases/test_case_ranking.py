"""Case ranking over every case of a status, not only the most recent ones."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cases_support import T0, record_check
from safestream.cases.model import CaseConfig
from safestream.cases.service import CaseService
from safestream.errors import InputError
from safestream.store.db import Store

NOW = T0 + timedelta(hours=30)


def service(store: Store) -> CaseService:
    return CaseService(store, CaseConfig(window_s=3600), clock=lambda: NOW)


def full_order(svc: CaseService, status: str | None = None) -> list[int]:
    """The reference order: every case loaded with its events, sorted by priority."""
    cases = svc.repo.list(status=status, limit=100_000)
    cases.sort(key=lambda c: (-c.priority(NOW, svc.config).score, -c.id))
    return [c.id for c in cases]


def test_an_old_live_case_beyond_the_old_window_comes_first(store: Store) -> None:
    record_check(store, seed=1, account="live-acct", surface="live", at=T0)
    for i in range(12):  # far more recent known-material cases than 5 x limit
        record_check(store, seed=10 + i, account=f"acct-{i}", at=T0 + timedelta(hours=2 + i))
    svc = service(store)
    svc.sync()
    newest_first = svc.repo.list(limit=5)
    assert "live-acct" not in {c.account_id for c in newest_first}  # outside the old window
    (top,) = svc.list(limit=1)
    assert top.account_id == "live-acct"
    assert svc.to_dict(top)["priority"] > 1000
    two = svc.list(limit=2)
    assert [c.account_id for c in two] == ["live-acct", "acct-11"]
    assert [c.id for c in svc.list(status="new", limit=3)] == full_order(svc, "new")[:3]
    assert svc.list(status="confirmed") == []


def test_ranking_matches_loading_every_case(store: Store) -> None:
    at = T0
    for i in range(30):
        at += timedelta(hours=3)
        kind = ("upload", "live", "chat")[i % 3]
        outcome, scores = ("match", None) if i % 4 else ("no_match", {"nudity": 0.9})
        account = f"acct-{i % 7}" if i % 5 else None
        record_check(
            store, seed=i, account=account, surface=kind, at=at, outcome=outcome, scores=scores
        )
        if i % 2:  # the same file again in the same case: one distinct file
            record_check(
                store, seed=i, account=account, surface=kind, at=at, outcome=outcome, scores=scores
            )
        if i % 3 == 0:  # another file in the same case
            record_check(store, seed=100 + i, account=account, at=at + timedelta(minutes=1))
    svc = service(store)
    svc.sync()
    # prior reports on an account count in the priority: report some cases
    for case in svc.repo.list(limit=100)[::4]:
        for status, code in (
            ("in_review", "assigned"),
            ("confirmed", "known_material_confirmed"),
            ("reported", "report_submitted"),
        ):
            svc.repo.transition(case.id, status, reason_code=code, note="", actor="t")
    expected = full_order(svc)
    assert len(expected) > 20
    for limit in (1, 3, 10, len(expected), len(expected) + 5):
        assert [c.id for c in svc.list(limit=limit)] == expected[:limit]
    for status in ("new", "reported"):
        assert [c.id for c in svc.list(status=status, limit=50)] == full_order(svc, status)
    # a reported case without an account has no prior reports (never a negative count)
    for case in svc.list(status="reported", limit=50):
        assert case.prior_reports >= 0
        if case.account_id is None:
            assert case.prior_reports == 0


def test_bad_list_arguments(store: Store) -> None:
    svc = service(store)
    with pytest.raises(InputError, match="unknown case status"):
        svc.list(status="open")
    with pytest.raises(InputError, match="at least 1"):
        svc.list(limit=0)
    assert svc.list() == []
