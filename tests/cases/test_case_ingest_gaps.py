"""Ingestion never skips a check record that commits after a later one (id gaps)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from cases_support import T0, hashes, record_check
from safestream.cases.model import CaseConfig
from safestream.cases.service import CaseService
from safestream.store import cases as store_cases
from safestream.store.db import Store
from safestream.store.models import CaseEventRow, CheckRow


def service(store: Store) -> CaseService:
    return CaseService(store, CaseConfig(), clock=lambda: T0 + timedelta(minutes=5))


def check_values(seed: int, account: str = "acct-1") -> dict[str, Any]:
    """The columns of a matching check record, as :func:`record_check` writes them."""
    return {
        "content_id": str(uuid.uuid4()),
        "received_at": T0,
        "account_id": account,
        "username": f"user-{account}",
        "profile_url": f"https://example.com/u/{account}",
        "ip_address": "203.0.113.7",
        "source_port": 51234,
        "client_timestamp": T0 - timedelta(seconds=1),
        "surface": "upload",
        "outcome": "match",
        "signals": hashes(seed),
        "matches": [{"bank": "known", "signal_type": "pdq", "distance_bits": 0}],
        "reasons": [],
        "scores": None,
    }


def insert_with_id(store: Store, check_id: int, values: dict[str, Any]) -> None:
    """Insert a check record with a chosen id (the sequence is moved past it on PostgreSQL)."""
    with store.engine.begin() as conn:
        conn.execute(insert(CheckRow.__table__).values(id=check_id, **values))
        if store.dialect == "postgresql":
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('checks', 'id'), "
                    "GREATEST((SELECT MAX(id) FROM checks), 1))"
                )
            )


def grouped(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(select(CaseEventRow.content_id)).scalars())


def test_late_commit_is_grouped(store: Store) -> None:
    """id N commits after N+1 was read: the next sync still groups it, once."""
    svc = service(store)
    record_check(store, seed=1)
    svc.sync()
    checks = CheckRow.__table__
    early = check_values(2)
    if store.dialect == "postgresql":
        # Two real connections: the first takes its id, and commits last.
        slow = store.engine.connect()
        tx = slow.begin()
        slow.execute(insert(checks).values(**early))
        later = record_check(store, seed=3)
        assert svc.sync() == 1  # sees the later record only
        assert early["content_id"] not in grouped(store)
        assert svc.repo.pending_gaps()  # the uncommitted id is remembered
        tx.commit()
        slow.close()
        with store.engine.connect() as conn:
            ids = dict(conn.execute(select(CheckRow.content_id, CheckRow.id)).all())
    else:
        # SQLite serialises writers: the same order of commits, with the id reserved by hand.
        with store.engine.connect() as conn:
            top = int(conn.execute(select(func.max(CheckRow.id))).scalar_one())
        insert_with_id(store, top + 2, check_values(3))
        with store.engine.connect() as conn:
            later = conn.execute(
                select(CheckRow.content_id).where(CheckRow.id == top + 2)
            ).scalar_one()
        assert svc.sync() == 1
        assert svc.repo.pending_gaps() == [top + 1]
        insert_with_id(store, top + 1, early)
        ids = {early["content_id"]: top + 1, later: top + 2}
    assert ids[later] > ids[early["content_id"]]  # the earlier id committed last
    assert svc.sync() == 1  # the late record, found in the gap
    assert early["content_id"] in grouped(store)
    assert later in grouped(store)
    assert svc.repo.pending_gaps() == []
    assert svc.sync() == 0  # never grouped twice
    assert len(grouped(store)) == 3
    assert sum(len(c.events) for c in svc.repo.list()) == 3


def test_rolled_back_gap_expires(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hole that never fills (a rolled-back insert) is dropped after the horizon."""
    svc = service(store)
    record_check(store, seed=1)
    with store.engine.connect() as conn:
        top = int(conn.execute(select(func.max(CheckRow.id))).scalar_one())
    insert_with_id(store, top + 3, check_values(2))
    assert svc.sync() == 2
    assert svc.repo.pending_gaps() == [top + 1, top + 2]
    assert svc.sync() == 0
    assert svc.repo.pending_gaps() == [top + 1, top + 2]  # still within the horizon
    monkeypatch.setattr(store_cases, "GAP_TTL_S", -1.0)
    assert svc.sync() == 0
    assert svc.repo.pending_gaps() == []
    # A record in an expired hole is no longer looked for; later ones still are.
    record_check(store, seed=4)
    assert svc.sync() == 1
    assert len(grouped(store)) == 3


def test_gap_refill_keeps_dedup_by_content(store: Store) -> None:
    """A late record of content already grouped adds a detection once, never twice."""
    svc = service(store)
    record_check(store, seed=1)
    with store.engine.connect() as conn:
        top = int(conn.execute(select(func.max(CheckRow.id))).scalar_one())
    insert_with_id(store, top + 2, check_values(5))
    svc.sync()
    late = check_values(5)
    insert_with_id(store, top + 1, late)
    assert svc.sync() == 1
    assert svc.sync() == 0
    events = [e for c in svc.repo.list() for e in c.events]
    assert len(events) == 3
    assert len({e.content_id for e in events}) == 3
    case = svc.repo.list()[0]
    assert len(case.files()) == 2  # the same file twice is one file
