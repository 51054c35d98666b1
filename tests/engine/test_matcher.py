"""The matcher follows the store's change log and survives snapshots."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, RootTransaction, insert

from dbfixtures import PG_URL
from safestream.banks.formats import HashRecord
from safestream.engine import matcher as matcher_mod
from safestream.engine.matcher import Matcher
from safestream.store.banks import BankRepository
from safestream.store.models import BankEntryRow, EntryChangeRow, utcnow

#: Tests that hold a real transaction open on a second connection, or need
#: PostgreSQL transaction ids: PostgreSQL only.
needs_postgres = pytest.mark.skipif(
    PG_URL is None,
    reason="needs PostgreSQL transactions and ids: set SAFESTREAM_TEST_DATABASE_URL (CI sets it)",
)
on_postgres = pytest.mark.parametrize("store", ["postgresql"], indirect=True)


def pdq(i: int) -> str:
    return f"{i:064x}"


def hits(m: Matcher, value: str) -> set[int]:
    return {h.entry_id for h in m.search_pdq([value], radius=0)}


@pytest.fixture
def small_snapshot_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_mod, "SNAPSHOT_AFTER_CHANGES", 2)


def test_snapshot_round_trip_and_replay(
    repo: BankRepository, tmp_path: Path, small_snapshot_threshold: None
) -> None:
    repo.create_bank("b")
    ids, _ = repo.add_entries("b", [HashRecord("pdq", pdq(i)) for i in range(1, 6)])
    repo.add_entries("b", [HashRecord("md5", "a" * 32)])
    snap = tmp_path / "snap"
    first = Matcher.build(repo, snap)
    assert (snap / "manifest.json").exists()
    assert hits(first, pdq(3)) == {ids[2]}
    # changes after the snapshot are replayed on the next build
    repo.remove_entries("b", entry_ids=[ids[2]])
    (new_id,), _ = repo.add_entries("b", [HashRecord("pdq", pdq(99))])
    second = Matcher.build(repo, snap)
    assert hits(second, pdq(3)) == set()
    assert hits(second, pdq(99)) == {new_id}
    assert [h.entry_id for h in second.search_exact("md5", "a" * 32)]
    assert second.last_seq == repo.max_change_seq()


@pytest.mark.parametrize("damage", ["garbage", "foreign", "future", "missing-pdq"])
def test_damaged_snapshot_falls_back_to_store(
    repo: BankRepository, tmp_path: Path, small_snapshot_threshold: None, damage: str
) -> None:
    repo.create_bank("b")
    ids, _ = repo.add_entries("b", [HashRecord("pdq", pdq(i)) for i in range(1, 6)])
    snap = tmp_path / "snap"
    Matcher.build(repo, snap)
    manifest = snap / "manifest.json"
    data = json.loads(manifest.read_text())
    if damage == "garbage":
        manifest.write_text("{not json")
    elif damage == "foreign":
        manifest.write_text(json.dumps({**data, "instance_id": "other"}))
    elif damage == "future":
        manifest.write_text(json.dumps({**data, "last_seq": 10**9}))
    else:
        for f in (snap / "pdq").iterdir():
            f.unlink()
    rebuilt = Matcher.build(repo, snap)
    assert hits(rebuilt, pdq(4)) == {ids[3]}
    assert len(rebuilt.pdq) == 5


def _commit_change(repo: BankRepository, seq: int, value: str) -> int:
    """Insert an entry and its change-log row with an explicit sequence number,
    as a PostgreSQL transaction that took ``seq`` early but committed late would."""
    from safestream.store.models import BankEntryRow, EntryChangeRow, utcnow

    bank_id = repo.get_bank("b").id
    with repo.store.session() as s:
        row = BankEntryRow(
            bank_id=bank_id, signal_type="pdq", value=value, labels=[], added_at=utcnow()
        )
        s.add(row)
        s.flush()
        s.add(
            EntryChangeRow(
                seq=seq,
                entry_id=row.id,
                bank_id=bank_id,
                op="add",
                signal_type="pdq",
                value=value,
                changed_at=utcnow(),
            )
        )
        return row.id


def test_late_committed_changes_are_not_skipped(repo: BankRepository) -> None:
    repo.create_bank("b")
    repo.add_entries("b", [HashRecord("pdq", pdq(1))])  # seq 1
    m = Matcher.build(repo)
    late_high = _commit_change(repo, 5, pdq(5))
    m.refresh()
    assert hits(m, pdq(5)) == {late_high}
    late_low = _commit_change(repo, 3, pdq(3))  # committed after seq 5 was read
    m.refresh()
    assert hits(m, pdq(3)) == {late_low}
    # a build that starts above a gap also waits for it
    _commit_change(repo, 10, pdq(10))
    fresh = Matcher.build(repo)
    in_flight = _commit_change(repo, 8, pdq(8))
    fresh.refresh()
    assert hits(fresh, pdq(8)) == {in_flight}


def _hold_change(repo: BankRepository, conn: Connection, value: str) -> int:
    """Add an entry and its change-log row on ``conn`` (in its open transaction)."""
    bank_id = repo.get_bank("b").id
    entry_id = int(
        conn.execute(
            insert(BankEntryRow.__table__)
            .values(bank_id=bank_id, signal_type="pdq", value=value, labels=[], added_at=utcnow())
            .returning(BankEntryRow.id)
        ).scalar_one()
    )
    conn.execute(
        insert(EntryChangeRow.__table__).values(
            entry_id=entry_id,
            bank_id=bank_id,
            op="add",
            signal_type="pdq",
            value=value,
            changed_at=utcnow(),
        )
    )
    return entry_id


@contextmanager
def holding_change(repo: BankRepository, value: str) -> Iterator[tuple[RootTransaction, int]]:
    """A second real connection whose open transaction has added an entry (and its change)."""
    conn = repo.store.engine.connect()
    try:
        tx = conn.begin()
        yield tx, _hold_change(repo, conn, value)
    finally:
        conn.close()


class _Bounds:
    """Counts the transaction-id bounds a matcher takes (each a real ``fresh_xid``)."""

    def __init__(self, repo: BankRepository, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken: list[int] = []
        real = repo.fresh_xid

        def fresh_xid() -> int | None:
            xid = real()
            assert xid is not None
            self.taken.append(xid)
            return xid

        monkeypatch.setattr(repo, "fresh_xid", fresh_xid)

    def wait_until_ended(self, repo: BankRepository) -> None:
        """Wait until every transaction below the bounds taken has ended.

        Another test (another worker, another database of the same server) may
        hold a transaction for a moment; the rule under test must then wait too.
        """
        assert self.taken
        for _ in range(600):
            snapshot = repo.snapshot_xids()
            assert snapshot is not None
            if snapshot[0] >= max(self.taken):
                return
            time.sleep(0.05)
        pytest.fail(f"a transaction below {max(self.taken)} kept running for 30 s")


def test_rolled_back_gap_is_dropped(repo: BankRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change-log number that never fills is dropped.

    SQLite: after the time horizon ``GAP_TTL_S``. PostgreSQL: not by the
    horizon, but once every transaction running when the gap got its
    transaction-id bound (at ``GAP_MIN_AGE_S`` of age) has ended.
    """
    repo.create_bank("b")
    repo.add_entries("b", [HashRecord("pdq", pdq(1))])  # seq 1
    m = Matcher.build(repo)
    now = [1000.0]
    m.clock = lambda: now[0]
    bounds = _Bounds(repo, monkeypatch)
    _commit_change(repo, 4, pdq(4))  # 2 and 3 never commit
    assert m.refresh() == 1
    assert m.pending_gaps() == [2, 3]
    assert bounds.taken == []  # too young for a bound
    now[0] += matcher_mod.GAP_TTL_S / 2
    assert m.refresh() == 0
    assert m.pending_gaps() == [2, 3]  # SQLite: within the horizon; PostgreSQL: bounded now
    if repo.store.dialect == "postgresql":
        assert len(bounds.taken) == 1  # one bound for the batch
        bounds.wait_until_ended(repo)  # and no clock: the horizon does not apply
    else:
        assert bounds.taken == []
        now[0] += matcher_mod.GAP_TTL_S
    assert m.refresh() == 0
    assert m.pending_gaps() == []
    assert len(bounds.taken) <= 1


@needs_postgres
@on_postgres
def test_held_change_is_waited_for_past_the_horizon(
    repo: BankRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bank change held open longer than any horizon is applied when it commits, once."""
    monkeypatch.setattr(matcher_mod, "GAP_TTL_S", -1.0)
    monkeypatch.setattr(matcher_mod, "GAP_MIN_AGE_S", 0.0)
    repo.create_bank("b")
    repo.add_entries("b", [HashRecord("pdq", pdq(1))])
    m = Matcher.build(repo)
    bounds = _Bounds(repo, monkeypatch)
    with holding_change(repo, pdq(2)) as (tx, held):
        (later,), _ = repo.add_entries("b", [HashRecord("pdq", pdq(3))])
        assert m.refresh() == 1
        assert hits(m, pdq(3)) == {later}
        gaps = m.pending_gaps()
        assert len(gaps) == 1
        assert len(bounds.taken) == 1
        for _ in range(3):
            assert m.refresh() == 0
            assert m.pending_gaps() == gaps
        assert hits(m, pdq(2)) == set()
        tx.commit()
    assert m.refresh() == 1
    assert hits(m, pdq(2)) == {held}
    assert m.pending_gaps() == []
    assert m.refresh() == 0
    assert len(m.pdq) == 3


@needs_postgres
@on_postgres
def test_held_change_that_rolls_back_is_dropped_without_a_horizon(
    repo: BankRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder rolls back: the gap goes at the next refresh after it ended."""
    monkeypatch.setattr(matcher_mod, "GAP_MIN_AGE_S", 0.0)  # GAP_TTL_S stays 120 s
    repo.create_bank("b")
    repo.add_entries("b", [HashRecord("pdq", pdq(1))])
    m = Matcher.build(repo)
    bounds = _Bounds(repo, monkeypatch)
    with holding_change(repo, pdq(2)) as (tx, _held):
        repo.add_entries("b", [HashRecord("pdq", pdq(3))])
        assert m.refresh() == 1
        gaps = m.pending_gaps()
        assert len(gaps) == 1
        assert m.refresh() == 0
        assert m.pending_gaps() == gaps  # its holder still runs
        tx.rollback()
    bounds.wait_until_ended(repo)
    assert m.refresh() == 0
    assert m.pending_gaps() == []
    assert hits(m, pdq(2)) == set()
    assert len(m.pdq) == 2


@needs_postgres
@on_postgres
def test_bound_is_taken_once_the_gap_is_old_enough(
    repo: BankRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before ``GAP_MIN_AGE_S`` a gap has no bound and stays; after it, it is bounded, then goes."""
    repo.create_bank("b")
    repo.add_entries("b", [HashRecord("pdq", pdq(1))])  # seq 1
    m = Matcher.build(repo)
    now = [1000.0]
    m.clock = lambda: now[0]
    bounds = _Bounds(repo, monkeypatch)
    _commit_change(repo, 3, pdq(3))
    assert m.refresh() == 1
    now[0] += matcher_mod.GAP_MIN_AGE_S / 2
    assert m.refresh() == 0
    assert bounds.taken == []
    assert m.pending_gaps() == [2]
    now[0] += matcher_mod.GAP_MIN_AGE_S
    assert m.refresh() == 0
    assert len(bounds.taken) == 1
    assert m.pending_gaps() == [2]  # bounded now, dropped at a later refresh
    bounds.wait_until_ended(repo)
    assert m.refresh() == 0
    assert m.pending_gaps() == []
