"""Ingestion never skips a check record that commits after a later one (id gaps)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import RootTransaction, func, insert, select, text, update

from cases_support import T0, hashes, record_check
from dbfixtures import PG_URL
from safestream.cases.model import CaseConfig
from safestream.cases.service import CaseService
from safestream.store import cases as store_cases
from safestream.store.db import Store, snapshot_xids
from safestream.store.models import CaseEventRow, CheckRow, StoreMetaRow

#: Tests that hold a real transaction open on a second connection, or need
#: PostgreSQL transaction ids: PostgreSQL only.
needs_postgres = pytest.mark.skipif(
    PG_URL is None,
    reason="needs PostgreSQL transactions and ids: set SAFESTREAM_TEST_DATABASE_URL (CI sets it)",
)
on_postgres = pytest.mark.parametrize("store", ["postgresql"], indirect=True)


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


@contextmanager
def holding(store: Store, values: dict[str, Any]) -> Iterator[RootTransaction]:
    """A second real connection whose open transaction has inserted a check record."""
    conn = store.engine.connect()
    try:
        tx = conn.begin()
        conn.execute(insert(CheckRow.__table__).values(**values))
        yield tx
    finally:
        conn.close()


def grouped(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(select(CaseEventRow.content_id)).scalars())


def test_late_commit_is_grouped(store: Store) -> None:
    """id N commits after N+1 was read: the next sync still groups it, once."""
    svc = service(store)
    record_check(store, seed=1)
    svc.sync()
    early = check_values(2)
    if store.dialect == "postgresql":
        # Two real connections: the first takes its id, and commits last.
        with holding(store, early) as tx:
            later = record_check(store, seed=3)
            assert svc.sync() == 1  # sees the later record only
            assert early["content_id"] not in grouped(store)
            assert svc.repo.pending_gaps()  # the uncommitted id is remembered
            tx.commit()
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


def stored_gaps(store: Store) -> dict[str, Any]:
    """The gaps as ingestion stored them in ``store_meta`` (JSON)."""
    with store.engine.connect() as conn:
        raw = conn.execute(
            select(StoreMetaRow.value).where(StoreMetaRow.key == store_cases.GAPS_KEY)
        ).scalar()
    return dict(json.loads(raw)) if raw else {}


def store_gaps(store: Store, value: str) -> None:
    """Overwrite the stored gaps (the row exists once an ingestion noticed a gap)."""
    with store.engine.begin() as conn:
        conn.execute(
            update(StoreMetaRow).where(StoreMetaRow.key == store_cases.GAPS_KEY).values(value=value)
        )


def wait_for_xmin(store: Store, xid: int) -> None:
    """Wait until no transaction below ``xid`` runs on the server.

    Another test (another worker, another database of the same server) may
    hold a transaction for a moment; the rule under test must then wait too.
    """
    for _ in range(600):
        with store.engine.connect() as conn:
            snapshot = snapshot_xids(conn)
        assert snapshot is not None
        if snapshot[0] >= xid:
            return
        time.sleep(0.05)
    pytest.fail(f"a transaction below {xid} kept running on the test server for 30 s")


def wait_for_bounds(store: Store) -> None:
    """Wait until every transaction that ran when the gaps got their bounds has ended."""
    bounds = [g["xid_bound"] for g in stored_gaps(store).values() if isinstance(g, dict)]
    assert bounds and None not in bounds
    wait_for_xmin(store, max(bounds))


def top_id(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.max(CheckRow.id))).scalar_one())


def test_rolled_back_gap_expires(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hole that never fills (a rolled-back insert) is dropped.

    SQLite: after the time horizon ``GAP_TTL_S``. PostgreSQL: not by the
    horizon, but once every transaction running when the gap got its
    transaction-id bound (at ``GAP_MIN_AGE_S`` of age) has ended.
    """
    svc = service(store)
    record_check(store, seed=1)
    top = top_id(store)
    insert_with_id(store, top + 3, check_values(2))
    assert svc.sync() == 2
    assert svc.repo.pending_gaps() == [top + 1, top + 2]
    assert svc.sync() == 0
    assert svc.repo.pending_gaps() == [top + 1, top + 2]  # within the horizon, or too young
    monkeypatch.setattr(store_cases, "GAP_TTL_S", -1.0)
    assert svc.sync() == 0
    if store.dialect == "postgresql":
        assert svc.repo.pending_gaps() == [top + 1, top + 2]  # the horizon does not apply
        monkeypatch.setattr(store_cases, "GAP_MIN_AGE_S", 0.0)
        assert svc.sync() == 0  # old enough: the bound is taken now
        assert svc.repo.pending_gaps() == [top + 1, top + 2]
        wait_for_bounds(store)
        assert svc.sync() == 0
    assert svc.repo.pending_gaps() == []
    # A record in an expired hole is no longer looked for; later ones still are.
    record_check(store, seed=4)
    assert svc.sync() == 1
    assert len(grouped(store)) == 3


@needs_postgres
@on_postgres
def test_held_id_is_waited_for_past_the_horizon(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An insert held open longer than any horizon is still grouped when it commits, once."""
    monkeypatch.setattr(store_cases, "GAP_TTL_S", -1.0)
    monkeypatch.setattr(store_cases, "GAP_MIN_AGE_S", 0.0)
    svc = service(store)
    record_check(store, seed=1)
    svc.sync()
    early = check_values(2)
    with holding(store, early) as tx:
        later = record_check(store, seed=3)
        assert svc.sync() == 1
        gaps = svc.repo.pending_gaps()
        assert len(gaps) == 1
        assert stored_gaps(store)[str(gaps[0])]["xid_bound"] is not None
        for _ in range(3):
            assert svc.sync() == 0
            assert svc.repo.pending_gaps() == gaps
        assert early["content_id"] not in grouped(store)
        tx.commit()
    assert svc.sync() == 1
    assert early["content_id"] in grouped(store)
    assert later in grouped(store)
    assert svc.repo.pending_gaps() == []
    assert svc.sync() == 0
    assert len(grouped(store)) == 3


@needs_postgres
@on_postgres
def test_held_id_that_rolls_back_is_dropped_without_a_horizon(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder rolls back: the gap goes at the next ingestion after it ended."""
    monkeypatch.setattr(store_cases, "GAP_MIN_AGE_S", 0.0)  # GAP_TTL_S stays 600 s
    svc = service(store)
    record_check(store, seed=1)
    svc.sync()
    with holding(store, check_values(2)) as tx:
        record_check(store, seed=3)
        assert svc.sync() == 1
        gaps = svc.repo.pending_gaps()
        assert len(gaps) == 1
        assert svc.sync() == 0
        assert svc.repo.pending_gaps() == gaps  # its holder still runs
        tx.rollback()
    wait_for_bounds(store)
    assert svc.sync() == 0
    assert svc.repo.pending_gaps() == []
    assert len(grouped(store)) == 2


@needs_postgres
@on_postgres
def test_id_taken_before_its_transaction_id_is_waited_for(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder took the id, then got its transaction id after the later record's.

    Its id is then not below the snapshot's xmax read after the later record
    (xmax is one past the newest *ended* transaction), so xmax would not do as
    the bound: the fresh transaction id taken after the read does.
    """
    monkeypatch.setattr(store_cases, "GAP_MIN_AGE_S", 0.0)
    svc = service(store)
    record_check(store, seed=1)
    svc.sync()
    early = check_values(2)
    slow = store.engine.connect()
    try:
        tx = slow.begin()
        held = int(
            slow.execute(
                text("SELECT nextval(pg_get_serial_sequence('checks', 'id'))")
            ).scalar_one()
        )
        record_check(store, seed=3)  # takes held + 1 and commits first
        slow.execute(insert(CheckRow.__table__).values(id=held, **early))  # its xid: now
        assert svc.sync() == 1
        assert svc.repo.pending_gaps() == [held]
        for _ in range(3):
            assert svc.sync() == 0
            assert svc.repo.pending_gaps() == [held]
        tx.commit()
    finally:
        slow.close()
    assert svc.sync() == 1
    assert early["content_id"] in grouped(store)
    assert svc.repo.pending_gaps() == []


@needs_postgres
@on_postgres
def test_bound_is_taken_once_the_gap_is_old_enough(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before ``GAP_MIN_AGE_S`` a gap has no bound and stays; after it, it is bounded, then goes."""
    now = [datetime(2031, 1, 1, tzinfo=UTC)]
    monkeypatch.setattr(store_cases, "utcnow", lambda: now[0])
    svc = service(store)
    record_check(store, seed=1)
    top = top_id(store)
    insert_with_id(store, top + 2, check_values(2))
    assert svc.sync() == 2
    assert stored_gaps(store)[str(top + 1)]["xid_bound"] is None
    now[0] += timedelta(seconds=store_cases.GAP_MIN_AGE_S / 2)
    assert svc.sync() == 0
    assert stored_gaps(store)[str(top + 1)]["xid_bound"] is None
    assert svc.repo.pending_gaps() == [top + 1]
    now[0] += timedelta(seconds=store_cases.GAP_MIN_AGE_S)
    assert svc.sync() == 0
    assert stored_gaps(store)[str(top + 1)]["xid_bound"] is not None
    assert svc.repo.pending_gaps() == [top + 1]  # bounded now, dropped at a later ingestion
    wait_for_bounds(store)
    assert svc.sync() == 0
    assert svc.repo.pending_gaps() == []


def test_gaps_in_the_old_format_are_read_and_expire_by_the_horizon(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gaps stored by an earlier version (id -> ISO time) are looked for, then expire by time."""
    monkeypatch.setattr(store_cases, "GAP_MIN_AGE_S", 0.0)  # no bound is ever taken for them
    svc = service(store)
    record_check(store, seed=1)
    top = top_id(store)
    insert_with_id(store, top + 3, check_values(2))
    assert svc.sync() == 2
    noticed = datetime.now(UTC).isoformat()
    store_gaps(store, json.dumps({str(top + 1): noticed, str(top + 2): noticed}))
    assert svc.repo.pending_gaps() == [top + 1, top + 2]
    late = check_values(3)
    insert_with_id(store, top + 1, late)
    assert svc.sync() == 1  # found in an old-format gap
    assert late["content_id"] in grouped(store)
    assert stored_gaps(store) == {str(top + 2): noticed}  # kept as it was: no bound
    assert svc.sync() == 0
    assert svc.repo.pending_gaps() == [top + 2]  # within the horizon
    monkeypatch.setattr(store_cases, "GAP_TTL_S", -1.0)
    assert svc.sync() == 0
    assert svc.repo.pending_gaps() == []


@pytest.mark.parametrize(
    "damaged", ["{not json", "[1, 2]", '{"5": 7}', '{"5": {"noticed_at": 3, "xid_bound": 1}}']
)
def test_damaged_gaps_restart_cleanly(store: Store, damaged: str) -> None:
    """A damaged stored value is dropped rather than stopping ingestion."""
    svc = service(store)
    record_check(store, seed=1)
    top = top_id(store)
    insert_with_id(store, top + 2, check_values(2))
    assert svc.sync() == 2
    store_gaps(store, damaged)
    assert svc.repo.pending_gaps() == []
    record_check(store, seed=3)
    assert svc.sync() == 1
    assert svc.repo.pending_gaps() == []


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
