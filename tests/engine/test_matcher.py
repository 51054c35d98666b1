"""The matcher follows the store's change log and survives snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safestream.banks.formats import HashRecord
from safestream.engine import matcher as matcher_mod
from safestream.engine.matcher import Matcher
from safestream.store.banks import BankRepository


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
