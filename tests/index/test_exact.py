"""ExactIndex: exact lookup of MD5/SHA-1/SHA-256 digests of random bytes."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safestream.errors import InputError, SignalValueError
from safestream.index.exact import ExactIndex, normalize_digest
from safestream.index.storage import IndexFileError

MD5 = hashlib.md5(b"a").hexdigest()
SHA1 = hashlib.sha1(b"b").hexdigest()
SHA256 = hashlib.sha256(b"c").hexdigest()


def test_add_search_and_shared_values() -> None:
    index = ExactIndex()
    index.add([1, 2, 3, 4], [MD5, SHA1, SHA256, MD5.upper()])
    assert len(index) == 4
    assert index.search(MD5) == [1, 4]  # two bank entries, one file
    assert index.search(bytes.fromhex(SHA1)) == [2]
    assert index.search(f"  {SHA256.upper()} ") == [3]
    assert index.search(hashlib.md5(b"zz").hexdigest()) == []
    assert index.get(4) == MD5 and index.get(99) is None
    assert 1 in index and np.int64(2) in index and 99 not in index and "1" not in index
    assert index.ids() == [1, 2, 3, 4]


def test_upsert_and_remove() -> None:
    index = ExactIndex()
    index.add([1, 2], [MD5, MD5])
    index.add([1], [SHA1])  # id 1 now holds another value
    assert index.search(MD5) == [2] and index.search(SHA1) == [1]
    assert index.remove([2, 2, 77]) == 1  # repeats and unknown ids ignored
    assert index.search(MD5) == []
    assert index.remove([2]) == 0
    assert len(index) == 1


@pytest.mark.parametrize(
    "value",
    ["abc", MD5[:-1], MD5 + "0", "g" * 32, b"\x00" * 15, b"\x00" * 64, 12345, None],
)
def test_bad_values(value: object) -> None:
    index = ExactIndex()
    with pytest.raises(SignalValueError):
        index.add([1], [value])  # type: ignore[list-item]
    with pytest.raises(SignalValueError):
        index.search(value)  # type: ignore[arg-type]
    assert len(index) == 0


def test_bad_ids_and_lengths() -> None:
    index = ExactIndex()
    with pytest.raises(InputError, match="differ in length"):
        index.add([1, 2], [MD5])
    with pytest.raises(InputError, match="an id must be an int"):
        index.add(["x"], [MD5])  # type: ignore[list-item]
    with pytest.raises(InputError, match="int64"):
        index.add([2**64], [MD5])
    with pytest.raises(InputError, match="an id must be an int"):
        index.add([True], [MD5])
    assert len(index) == 0  # nothing half-added


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**63), 2**63 - 1), st.sampled_from([16, 20, 32]), st.binary(min_size=1)
        ),
        max_size=30,
    )
)
def test_matches_a_dict_model_and_round_trips(
    items: list[tuple[int, int, bytes]],
) -> None:
    import tempfile

    index = ExactIndex()
    model: dict[int, bytes] = {}
    for key, size, seed in items:
        value = hashlib.sha256(seed).digest()[:size]
        index.add([key], [value])
        model[key] = value
    for value in set(model.values()):
        assert index.search(value) == sorted(k for k, v in model.items() if v == value)
    with tempfile.TemporaryDirectory() as tmp:
        index.save(tmp)
        loaded = ExactIndex.load(tmp)
    assert loaded.ids() == sorted(model)
    assert all(loaded.get(k) == v.hex() for k, v in model.items())


def test_save_load_empty_and_corrupt(tmp_path: Path) -> None:
    ExactIndex().save(tmp_path / "empty")
    assert len(ExactIndex.load(tmp_path / "empty")) == 0
    index = ExactIndex()
    index.add([1, 2], [MD5, SHA256])
    saved = index.save(tmp_path / "x")
    loaded = ExactIndex.load(saved)
    assert loaded.search(SHA256) == [2] and loaded.search(MD5) == [1]
    data = bytearray((saved / "values.npy").read_bytes())
    data[-1] ^= 1
    (saved / "values.npy").write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="checksum"):
        ExactIndex.load(saved)
    index.save(saved)  # repaired
    (saved / "lengths.npy").unlink()
    with pytest.raises(IndexFileError, match="missing"):
        ExactIndex.load(saved)
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["format"] == "safestream-exact-index"
    (saved / "manifest.json").write_text(json.dumps({**manifest, "format": "pdq"}))
    with pytest.raises(IndexFileError, match="not a 'safestream-exact-index'"):
        ExactIndex.load(saved)


def test_load_rejects_bad_lengths(tmp_path: Path) -> None:
    index = ExactIndex()
    index.add([1], [MD5])
    saved = index.save(tmp_path / "x")
    manifest = json.loads((saved / "manifest.json").read_text())
    np.save(saved / "lengths.npy", np.array([17], dtype=np.uint8), allow_pickle=False)
    manifest["arrays"]["lengths"]["sha256"] = hashlib.sha256(
        (saved / "lengths.npy").read_bytes()
    ).hexdigest()
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFileError, match="invalid digest length"):
        ExactIndex.load(saved)


def test_normalize_digest() -> None:
    assert normalize_digest(MD5.upper()) == bytes.fromhex(MD5)
    assert normalize_digest(bytearray(20)) == bytes(20)
    assert normalize_digest(memoryview(bytes(32))) == bytes(32)


def test_concurrent_add_and_search() -> None:
    index = ExactIndex()
    values = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2_000)]
    index.add(range(1_000), values[:1_000])
    errors: list[str] = []

    def reader() -> None:
        for i in range(0, 1_000, 3):
            if index.search(values[i]) != [i]:
                errors.append(f"lost {i}")

    def writer() -> None:
        for i in range(1_000, 2_000, 50):
            index.add(range(i, i + 50), values[i : i + 50])

    threads = [threading.Thread(target=reader) for _ in range(3)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(index) == 2_000
