"""Banks and entries in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from safestream.banks.formats import HashRecord
from safestream.errors import ConflictError, InputError, NotFoundError
from safestream.store.banks import BankRepository


def rec(i: int, signal_type: str = "pdq") -> HashRecord:
    width = {"pdq": 64, "md5": 32}[signal_type]
    return HashRecord(signal_type, f"{i:0{width}x}")


def test_create_list_update_delete(repo: BankRepository) -> None:
    bank = repo.create_bank("ncmec-test", source="NCMEC", pdq_threshold=25)
    assert bank.enabled and not bank.is_allow_list and bank.pdq_threshold == 25
    assert bank.created_at.tzinfo is not None
    repo.create_bank("allow", is_allow_list=True)
    assert [b.name for b in repo.list_banks()] == ["allow", "ncmec-test"]
    updated = repo.update_bank("ncmec-test", enabled=False, pdq_threshold=31)
    assert not updated.enabled and updated.pdq_threshold == 31
    assert updated.version == bank.version + 1
    repo.delete_bank("allow")
    with pytest.raises(NotFoundError):
        repo.get_bank("allow")


@pytest.mark.parametrize("name", ["", "has space", "-leading", "x" * 101, "a/b"])
def test_invalid_bank_names(repo: BankRepository, name: str) -> None:
    with pytest.raises(InputError, match="invalid bank name"):
        repo.create_bank(name)


def test_duplicate_bank_and_bad_threshold(repo: BankRepository) -> None:
    repo.create_bank("b")
    with pytest.raises(ConflictError, match="already exists"):
        repo.create_bank("b")
    with pytest.raises(InputError, match="threshold"):
        repo.create_bank("c", pdq_threshold=-1)
    with pytest.raises(InputError, match="threshold"):
        repo.update_bank("b", pdq_threshold=999)
    with pytest.raises(InputError, match="cannot change version"):
        repo.update_bank("b", version=7)


def test_entries_and_change_log(repo: BankRepository) -> None:
    repo.create_bank("b")
    ids, dup = repo.add_entries("b", [rec(1), rec(2), rec(1), rec(3, "md5")])
    assert len(ids) == 3 and dup == 1
    assert repo.get_bank("b").entry_count == 3
    changes = repo.changes_since(0)
    assert [(c.op, c.entry_id) for c in changes] == [("add", i) for i in ids]
    seq = repo.max_change_seq()
    assert repo.remove_entries("b", values=[("pdq", rec(2).value)]) == 1
    assert repo.remove_entries("b", entry_ids=[ids[2]]) == 1
    assert repo.remove_entries("b", entry_ids=[999999]) == 0
    later = repo.changes_since(seq)
    assert [(c.op, c.entry_id) for c in later] == [("remove", ids[1]), ("remove", ids[2])]
    assert [e.id for e in repo.iter_entries("b", batch_size=1)] == [ids[0]]
    assert set(repo.entries_by_ids([ids[0], 424242])) == {ids[0]}


def test_delete_bank_logs_removals(repo: BankRepository) -> None:
    repo.create_bank("b")
    ids, _ = repo.add_entries("b", [rec(1), rec(2)])
    seq = repo.max_change_seq()
    repo.delete_bank("b")
    assert sorted(c.entry_id for c in repo.changes_since(seq) if c.op == "remove") == ids
    assert list(repo.iter_all_entries()) == []


def test_same_value_in_two_banks(repo: BankRepository) -> None:
    repo.create_bank("a")
    repo.create_bank("b")
    (ia,), _ = repo.add_entries("a", [rec(5)])
    (ib,), _ = repo.add_entries("b", [rec(5)])
    assert ia != ib
    entries = repo.entries_by_ids([ia, ib])
    assert {entries[ia].bank_name, entries[ib].bank_name} == {"a", "b"}
