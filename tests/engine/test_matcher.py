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
