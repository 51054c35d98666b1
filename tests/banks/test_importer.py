"""Imports: all or nothing, resumable, errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from safestream.banks.importer import import_file
from safestream.errors import HashListError, InputError, NotFoundError
from safestream.store.banks import BankRepository


def pdq(i: int) -> str:
    return f"{i:064x}"


def write_list(path: Path, n: int, bad_line: int | None = None) -> Path:
    lines = []
    for i in range(1, n + 1):
        lines.append("pdq " + "z" * 64 if i == bad_line else f"pdq {pdq(i)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_adds_entries_and_dedupes(repo: BankRepository, tmp_path: Path) -> None:
    repo.create_bank("b")
    path = tmp_path / "list.txt"
    path.write_text(f"pdq {pdq(1)}\npdq {pdq(2)}\npdq {pdq(1)}\nmd5 {'a' * 32}\n")
    result = import_file(repo, "b", path, chunk_lines=2)
    assert result.entries_added == 3
    assert result.duplicates == 1
    assert result.list_format == "te"
    again = import_file(repo, "b", path)
    assert again.entries_added == 0 and again.duplicates == 4
    assert repo.get_bank("b").entry_count == 3


def test_malformed_line_fails_whole_import(repo: BankRepository, tmp_path: Path) -> None:
    repo.create_bank("b")
    path = write_list(tmp_path / "bad.txt", 50, bad_line=37)
    with pytest.raises(HashListError) as info:
        import_file(repo, "b", path, chunk_lines=10)
    assert info.value.line_number == 37
    assert str(info.value).startswith(f"{path}:37: ")
    assert "not hexadecimal" in str(info.value)
    # nothing of the failed import is visible, not even the chunks staged before line 37
    assert repo.get_bank("b").entry_count == 0
    assert repo.max_change_seq() == 0


def test_skip_invalid_reports_and_imports_the_rest(repo: BankRepository, tmp_path: Path) -> None:
    repo.create_bank("b")
    path = write_list(tmp_path / "bad.txt", 20, bad_line=5)
    result = import_file(repo, "b", path, skip_invalid=True, chunk_lines=3)
    assert result.entries_added == 19
    assert len(result.errors) == 1 and ":5: " in result.errors[0]


def test_interrupted_import_resumes_without_duplicates(
    repo: BankRepository, tmp_path: Path
) -> None:
    repo.create_bank("b")
    path = write_list(tmp_path / "big.txt", 100)
    calls = []

    def interrupt(line: int) -> None:
        calls.append(line)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_file(repo, "b", path, chunk_lines=10, on_progress=interrupt)
    # staged but not published: the bank is untouched
    assert repo.get_bank("b").entry_count == 0
    result = import_file(repo, "b", path, chunk_lines=10)
    assert result.resumed_from_line == 30
    assert result.entries_added == 100
    assert result.duplicates == 0
    assert {e.value for e in repo.iter_entries("b")} == {pdq(i) for i in range(1, 101)}


def test_import_errors_for_missing_things(repo: BankRepository, tmp_path: Path) -> None:
    repo.create_bank("b")
    with pytest.raises(InputError, match="does not exist"):
        import_file(repo, "b", tmp_path / "nope.txt")
    with pytest.raises(InputError, match="not a regular file"):
        import_file(repo, "b", tmp_path)
    path = write_list(tmp_path / "ok.txt", 3)
    with pytest.raises(NotFoundError, match="no bank named 'other'"):
        import_file(repo, "other", path)


def test_csv_import_keeps_provenance(repo: BankRepository, tmp_path: Path) -> None:
    repo.create_bank("b")
    path = tmp_path / "list.csv"
    path.write_text(f"signal_type,value,external_id,source,labels\npdq,{pdq(7)},X1,IWF,l1;l2\n")
    import_file(repo, "b", path)
    (entry,) = list(repo.iter_entries("b"))
    assert (entry.external_id, entry.source, entry.labels) == ("X1", "IWF", ("l1", "l2"))
    assert entry.added_at.tzinfo is not None


def test_binary_garbage_is_rejected_with_line(repo: BankRepository, tmp_path: Path) -> None:
    repo.create_bank("b")
    path = tmp_path / "garbage.txt"
    path.write_bytes(b"\x00\xff\xfe garbage \x89PNG\n")
    with pytest.raises(HashListError, match=r":1: "):
        import_file(repo, "b", path, list_format="te")
    assert repo.get_bank("b").entry_count == 0
