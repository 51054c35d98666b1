"""PDQIndex against a brute-force reference, on random hashes only."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safestream.errors import InputError, SignalValueError
from safestream.index import mih_kernels, pdq_index
from safestream.index.pdq_index import PDQIndex
from safestream.index.storage import IndexFileError

# The brute-force reference of conftest.py (the ``reference`` fixture).
Reference = Callable[[Mapping[int, bytes], npt.NDArray[np.uint8], int], list[list[tuple[int, int]]]]

RADII = [0, 1, 15, 31, 32, 40, 64, 256]
METHODS = ["mih", "brute", "auto"]


def random_hashes(rng: np.random.Generator, n: int) -> npt.NDArray[np.uint8]:
    """``n`` random 32-byte hashes."""
    return rng.integers(0, 256, size=(n, 32), dtype=np.uint8)


def at_distance(
    rng: np.random.Generator, row: npt.NDArray[np.uint8], distance: int
) -> npt.NDArray[np.uint8]:
    """A copy of ``row`` with exactly ``distance`` distinct bits flipped."""
    out = row.copy()
    for bit in rng.choice(256, size=distance, replace=False):
        out[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def model_of(ids: npt.ArrayLike, hashes: npt.NDArray[np.uint8]) -> dict[int, bytes]:
    """The plain dict a PDQIndex should behave like."""
    return {int(i): h.tobytes() for i, h in zip(np.asarray(ids).tolist(), hashes, strict=True)}


def planted_queries(
    rng: np.random.Generator,
    index: PDQIndex,
    model: dict[int, bytes],
    distances: range,
    start_id: int,
) -> npt.NDArray[np.uint8]:
    """Random queries, each with one stored hash planted at each of ``distances``."""
    queries = random_hashes(rng, 4)
    next_id = start_id
    for q in queries:
        rows = np.stack([at_distance(rng, q, d) for d in distances])
        ids = np.arange(next_id, next_id + rows.shape[0])
        index.add(ids, rows)
        model.update(model_of(ids, rows))
        next_id += rows.shape[0]
    return queries


# --------------------------------------------------------------------------- exactness


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 3000),
    n_removed=st.integers(0, 300),
    radius=st.sampled_from(RADII),
    method=st.sampled_from(METHODS),
    delta_limit=st.sampled_from([1, 64, 1000, 100_000]),
)
def test_random_matches_brute_force(
    reference: Reference,
    seed: int,
    n: int,
    n_removed: int,
    radius: int,
    method: pdq_index.SearchMethod,
    delta_limit: int,
) -> None:
    rng = np.random.default_rng(seed)
    index = PDQIndex(delta_limit=delta_limit, method=method)
    hashes = random_hashes(rng, n)
    ids = rng.choice(1 << 40, size=n, replace=False) - (1 << 39)  # negative ids too
    # Added in a few batches so that merges, the delta and tombstones all play a part.
    for chunk in np.array_split(np.arange(n), 3):
        index.add(ids[chunk], hashes[chunk])
    model = model_of(ids, hashes)
    gone = ids[:n_removed].tolist()
    assert index.remove(gone) == min(n_removed, n)
    for key in gone:
        model.pop(key)
    queries = np.concatenate(
        [
            planted_queries(rng, index, model, range(0, 41, 3), start_id=1 << 50),
            hashes[rng.integers(0, n, size=3)] if n else random_hashes(rng, 1),
        ]
    )
    assert len(index) == len(model)
    assert index.search(queries, radius) == reference(model, queries, radius)


@pytest.mark.parametrize("method", METHODS)
def test_planted_near_duplicates_every_distance(
    rng: np.random.Generator, reference: Reference, method: pdq_index.SearchMethod
) -> None:
    # 20k random hashes plus, per query, one stored hash at every distance 0..40.
    index = PDQIndex(delta_limit=500, method=method)
    background = random_hashes(rng, 20_000)
    index.add(np.arange(20_000), background)
    model = model_of(np.arange(20_000), background)
    queries = planted_queries(rng, index, model, range(41), start_id=100_000)
    for radius in (31, 32, 40):
        got = index.search(queries, radius)
        assert got == reference(model, queries, radius)
        for q, hits in enumerate(got):
            planted = [
                (i, d) for i, d in hits if i >= 100_000 + 41 * q and i < 100_000 + 41 * (q + 1)
            ]
            # zero missed, zero extra, exact distances
            assert planted == [(100_000 + 41 * q + d, d) for d in range(radius + 1)]


@pytest.mark.parametrize("radius", RADII)
def test_every_radius_with_delta_and_tombstones(
    rng: np.random.Generator, reference: Reference, radius: int
) -> None:
    index = PDQIndex(delta_limit=2_000, method="mih")
    hashes = random_hashes(rng, 5_000)
    index.add(np.arange(5_000), hashes)  # merged (over the limit)
    extra = random_hashes(rng, 300)
    index.add(np.arange(10_000, 10_300), extra)  # stays in the delta
    model = model_of(np.arange(5_000), hashes) | model_of(np.arange(10_000, 10_300), extra)
    for key in range(0, 5_000, 7):
        model.pop(key)
    index.remove(list(range(0, 5_000, 7)))
    assert "delta=300" in repr(index) and "tombstones=715" in repr(index)
    queries = np.concatenate(
        [
            planted_queries(rng, index, model, range(0, 70, 5), start_id=50_000),
            hashes[:3],
            extra[:2],
        ]
    )
    assert index.search(queries, radius) == reference(model, queries, radius)


def test_many_matches_for_one_query_overflow_path(reference: Reference) -> None:
    # More matches than the kernel's first pass keeps (16): it must re-run.
    rng = np.random.default_rng(5)
    base = random_hashes(rng, 1)[0]
    rows = np.stack([base] * 30 + [at_distance(rng, base, d % 31) for d in range(40)])
    index = PDQIndex(method="mih")
    index.add(np.arange(70)[::-1], rows)  # ids in reverse, to check the sort
    model = model_of(np.arange(70)[::-1], rows)
    queries = np.stack([base, random_hashes(rng, 1)[0], base])
    got = index.search(queries, 31)
    assert got == reference(model, queries, 31)
    assert len(got[0]) == 70 and got[1] == [] and got[2] == got[0]
    zeros = [i for i, d in got[0] if d == 0]
    assert zeros == sorted(zeros) and len(zeros) == 32


@pytest.mark.parametrize("method", ["mih", "brute"])
def test_thousands_of_identical_hashes(method: pdq_index.SearchMethod) -> None:
    # One bucket per table holding 3,000 rows: more candidates than the kernel's
    # first buffer, and more matches than the first result slots.
    rng = np.random.default_rng(9)
    base = random_hashes(rng, 1)[0]
    others = random_hashes(rng, 500)
    index = PDQIndex(method=method, delta_limit=100)
    index.add(np.arange(3_000), np.repeat(base[None, :], 3_000, axis=0))
    index.add(np.arange(10_000, 10_500), others)
    got = index.search(np.stack([base, others[0]]), 31)
    assert got[0] == [(i, 0) for i in range(3_000)]
    assert got[1] == [(10_000, 0)]


def test_flip_masks_enumerate_the_ball() -> None:
    for bits, sub_radius in [(8, 0), (8, 2), (23, 2), (24, 3)]:
        masks = pdq_index._flip_masks(bits, sub_radius)
        assert masks.shape[0] == sum(math.comb(bits, k) for k in range(sub_radius + 1))
        assert len(set(masks.tolist())) == masks.shape[0]
        assert max(int(m).bit_count() for m in masks) == sub_radius


# --------------------------------------------------------------------------- small cases


def test_empty_index(tmp_path: Path) -> None:
    index = PDQIndex()
    assert len(index) == 0
    q = np.zeros(32, dtype=np.uint8)
    assert index.search(q) == [[]]
    assert index.search(np.zeros((0, 32), dtype=np.uint8)) == []
    assert index.remove([1, 2]) == 0
    assert index.ids().tolist() == []
    index.save(tmp_path / "empty")
    loaded = PDQIndex.load(tmp_path / "empty")
    assert len(loaded) == 0 and loaded.search(q, 256) == [[]]


@pytest.mark.parametrize("merged", [False, True])
def test_one_entry_index_survives_round_trip(tmp_path: Path, merged: bool) -> None:
    # faiss loses a one-vector MultiHash index after a round trip; we must not.
    rng = np.random.default_rng(1)
    h = random_hashes(rng, 1)
    index = PDQIndex()
    index.add([42], h)
    if merged:
        index.merge()
    assert index.search(h[0]) == [[(42, 0)]]
    index.save(tmp_path / "one")
    loaded = PDQIndex.load(tmp_path / "one")
    assert len(loaded) == 1
    assert loaded.search(h[0]) == [[(42, 0)]]
    near = at_distance(rng, h[0], 31)
    assert loaded.search(near) == [[(42, 31)]]
    assert loaded.search(near, 30) == [[]]
    assert loaded.get(42) == h[0].tobytes()


def test_single_row_query_and_odd_layouts(rng: np.random.Generator) -> None:
    hashes = random_hashes(rng, 100)
    index = PDQIndex()
    index.add(np.arange(100), hashes)
    assert index.search(hashes[3]) == [[(3, 0)]]
    strided = hashes[::2]  # not contiguous
    fortran = np.asfortranarray(hashes[:5])
    assert index.search(strided)[1] == [(2, 0)]
    assert [r[0] for r in index.search(fortran)] == [(i, 0) for i in range(5)]


def test_kernels_compile_one_specialisation(tmp_path: Path, rng: np.random.Generator) -> None:
    # A second specialisation (e.g. a read-only array where a writable one was
    # seen before) would cost a multi-second compile while serving.
    hashes = random_hashes(rng, 300)
    index = PDQIndex(delta_limit=100, method="mih")
    index.search(hashes[0])  # empty
    index.add(np.arange(300), hashes)
    index.add([1_000], hashes[:1])
    index.remove([3])
    frozen = np.frombuffer(hashes[:2].tobytes(), dtype=np.uint8).reshape(2, 32)  # read-only
    assert index.search(frozen) == [[(0, 0), (1_000, 0)], [(1, 0)]]
    index.save(tmp_path / "i")
    loaded = PDQIndex.load(tmp_path / "i")
    loaded.search(frozen, 64)
    PDQIndex(method="brute").search(frozen)
    loaded.add([5_000], frozen[:1])
    loaded.search(frozen, 200)
    assert len(mih_kernels.search_mih.signatures) == 1
    assert len(mih_kernels.search_brute.signatures) == 1


def test_upsert_replaces_hash(rng: np.random.Generator) -> None:
    old, new = random_hashes(rng, 2)
    index = PDQIndex(delta_limit=4)
    index.add([7], old[None, :])
    index.merge()  # old hash now in the main tables
    index.add([7], new[None, :])
    assert len(index) == 1
    assert index.search(old, 0) == [[]]
    assert index.search(new, 0) == [[(7, 0)]]
    assert index.get(7) == new.tobytes()
    # Within one call, the last occurrence of an id wins.
    a, b, c = random_hashes(rng, 3)
    index.add([9, 9, 9], np.stack([a, b, c]))
    assert index.get(9) == c.tobytes() and len(index) == 2
    # Upsert in the delta, then merge.
    index.add([9], a[None, :])
    index.merge()
    assert index.search(np.stack([a, c]), 0) == [[(9, 0)], []]


def test_remove_and_lookup_helpers(rng: np.random.Generator) -> None:
    hashes = random_hashes(rng, 50)
    index = PDQIndex(delta_limit=20)
    index.add(np.arange(50), hashes)  # merged
    index.add([100], hashes[:1])  # delta
    assert 5 in index and 100 in index and 101 not in index and "5" not in index
    assert 2**70 not in index and index.get(-(2**70)) is None
    assert index.remove([5, 100, 999, 5]) == 2  # unknown and repeated ids ignored
    assert index.remove([5]) == 0
    assert 5 not in index and index.get(5) is None
    assert index.search(hashes[0], 0) == [[(0, 0)]]  # id 100 shared that hash; gone
    assert len(index) == 49
    ids, exported = index.export()
    assert ids.tolist() == [i for i in range(50) if i != 5]
    assert exported.tobytes() == np.delete(hashes, 5, axis=0).tobytes()
    assert index.nbytes > 0


def test_caller_mutation_after_add_does_not_leak(rng: np.random.Generator) -> None:
    hashes = random_hashes(rng, 3)
    original = hashes.copy()
    index = PDQIndex()
    index.add([1, 2, 3], hashes)
    hashes[:] = 0
    assert index.search(original, 0) == [[(1, 0)], [(2, 0)], [(3, 0)]]


# --------------------------------------------------------------------------- merges


def test_random_operations_against_a_model(rng: np.random.Generator, reference: Reference) -> None:
    index = PDQIndex(delta_limit=40)
    model: dict[int, bytes] = {}
    pool = random_hashes(rng, 400)
    for step in range(120):
        kind = rng.integers(0, 3)
        keys = rng.integers(0, 300, size=int(rng.integers(1, 30)))
        if kind < 2:
            rows = pool[rng.integers(0, 400, size=keys.shape[0])]
            index.add(keys, rows)
            model.update(model_of(keys, rows))  # later duplicates win, as in the index
        else:
            expected = len({int(k) for k in keys} & model.keys())
            assert index.remove(keys) == expected
            for k in keys.tolist():
                model.pop(k, None)
        assert len(index) == len(model)
        if step % 10 == 0:
            queries = pool[rng.integers(0, 400, size=5)]
            assert index.search(queries, 31) == reference(model, queries, 31)
            assert index.ids().tolist() == sorted(model)


def test_changes_during_a_merge_are_carried_over(
    rng: np.random.Generator, reference: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = PDQIndex(delta_limit=10_000)
    hashes = random_hashes(rng, 200)
    index.add(np.arange(100), hashes[:100])
    index.merge()
    index.add(np.arange(100, 150), hashes[100:150])  # the delta the merge folds in
    model = model_of(np.arange(150), hashes[:150])
    real_build = pdq_index._build_main
    fresh = random_hashes(rng, 4)

    def build_with_interference(ids: npt.NDArray[np.int64], rows: npt.NDArray[np.uint64]) -> object:
        # Runs without the change lock, as a merge's build does, while "another
        # thread" changes the index: every kind of change must survive the swap.
        index.add([120], fresh[:1])  # upsert of a snapshot-delta entry
        index.add([10], fresh[1:2])  # upsert of a main entry
        index.remove([130, 20])  # removal from the snapshot delta and the main
        index.add([500], fresh[2:3])  # a brand-new entry
        assert index.search(fresh[3], 0) == [[]]
        return real_build(ids, rows)

    model.update({120: fresh[0].tobytes(), 10: fresh[1].tobytes(), 500: fresh[2].tobytes()})
    del model[130], model[20]
    monkeypatch.setattr(pdq_index, "_build_main", build_with_interference)
    index.merge()
    monkeypatch.setattr(pdq_index, "_build_main", real_build)
    assert len(index) == len(model)
    queries = np.concatenate([hashes[:150], fresh])
    assert index.search(queries, 31) == reference(model, queries, 31)
    index.merge()
    assert "delta=0" in repr(index) and "tombstones=0" in repr(index)
    assert index.search(queries, 31) == reference(model, queries, 31)


def test_concurrent_search_while_adding(rng: np.random.Generator) -> None:
    # Results are checked, never timings: entries present before the readers
    # start are always found, and a batch is found as soon as add() returned.
    base = random_hashes(rng, 2_000)
    batches = [random_hashes(rng, 50) for _ in range(40)]
    index = PDQIndex(delta_limit=150)  # several merges while the readers run
    index.add(np.arange(2_000), base)
    published: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        for b, rows in enumerate(batches):
            index.add(np.arange(10_000 + 50 * b, 10_000 + 50 * (b + 1)), rows)
            published.append(b)
            if b % 5 == 4:
                index.remove([10_000 + 50 * b])  # and some removals
        stop.set()

    def reader(seed: int) -> None:
        local = np.random.default_rng(seed)
        while not stop.is_set() or local.random() < 0.5:
            visible = len(published)
            picks = local.integers(0, 2_000, size=8)
            got = index.search(base[picks], 0)
            if got != [[(int(p), 0)] for p in picks]:
                errors.append(f"base lookup failed: {got}")
            if visible:
                b = int(local.integers(0, visible))
                k = int(local.integers(1, 50))  # row 0 of some batches gets removed
                hit = index.search(batches[b][k], 0)
                if hit != [[(10_000 + 50 * b + k, 0)]]:
                    errors.append(f"published batch {b} row {k} not found: {hit}")

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert len(index) == 2_000 + 40 * 50 - 8


# --------------------------------------------------------------------------- persistence


def test_save_load_round_trip_with_delta_and_removes(
    tmp_path: Path, rng: np.random.Generator, reference: Reference
) -> None:
    index = PDQIndex(delta_limit=500)
    hashes = random_hashes(rng, 1_000)
    index.add(np.arange(1_000), hashes)  # merged at once (over the limit)
    index.add(np.arange(2_000, 2_100), random_hashes(rng, 100))  # non-empty delta
    index.remove(list(range(0, 1_000, 3)))
    assert "delta=100" in repr(index) and "tombstones=334" in repr(index)
    ids, exported = index.export()
    model = model_of(ids, exported)
    index.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["format"] == "safestream-pdq-index" and manifest["version"] == 1
    loaded = PDQIndex.load(tmp_path / "idx")
    assert len(loaded) == len(index) == len(model)
    queries = np.concatenate([hashes[:20], exported[-5:]])
    assert loaded.search(queries, 31) == reference(model, queries, 31)
    # Add (and upsert) after load, then save over the same directory.
    more = random_hashes(rng, 10)
    loaded.add(np.arange(5_000, 5_010), more)
    loaded.add([1], more[:1])
    model.update(model_of(np.arange(5_000, 5_010), more))
    model[1] = more[0].tobytes()
    assert loaded.search(more, 0) == reference(model, more, 0)
    loaded.save(tmp_path / "idx")
    again = PDQIndex.load(tmp_path / "idx")
    assert again.search(queries, 31) == reference(model, queries, 31)
    assert again.delta_limit == 500


@pytest.fixture
def saved(tmp_path: Path, rng: np.random.Generator) -> Path:
    """A small saved index to damage."""
    index = PDQIndex()
    index.add(np.arange(10), random_hashes(rng, 10))
    return index.save(tmp_path / "saved")


def test_load_missing_files(saved: Path) -> None:
    (saved / "hashes.npy").unlink()
    with pytest.raises(IndexFileError, match=r"hashes\.npy: index file is missing"):
        PDQIndex.load(saved)
    (saved / "manifest.json").unlink()
    with pytest.raises(IndexFileError, match="no index manifest"):
        PDQIndex.load(saved)
    with pytest.raises(IndexFileError, match="no index manifest"):
        PDQIndex.load(saved / "nowhere")


def test_load_corrupt_files(saved: Path) -> None:
    data = bytearray((saved / "hashes.npy").read_bytes())
    data[-1] ^= 0xFF
    (saved / "hashes.npy").write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="checksum"):
        PDQIndex.load(saved)


def _rewrite(
    saved: Path, name: str, array: npt.NDArray[np.generic], **manifest_changes: object
) -> None:
    # Replace one array *and* its manifest entry, as a careful tamperer would,
    # so that only the shape/dtype/content checks can catch it.
    import hashlib

    np.save(saved / f"{name}.npy", array, allow_pickle=False)
    manifest = json.loads((saved / "manifest.json").read_text())
    entry = manifest["arrays"][name]
    entry["sha256"] = hashlib.sha256((saved / f"{name}.npy").read_bytes()).hexdigest()
    entry["shape"] = list(array.shape)
    entry["dtype"] = array.dtype.str
    manifest.update(manifest_changes)
    (saved / "manifest.json").write_text(json.dumps(manifest))


def test_load_rejects_wrong_dtype_shape_and_duplicates(saved: Path) -> None:
    _rewrite(saved, "hashes", np.zeros((10, 32), dtype=np.int16))
    with pytest.raises(IndexFileError, match="expected dtype"):
        PDQIndex.load(saved)
    _rewrite(saved, "hashes", np.zeros((10, 31), dtype=np.uint8))
    with pytest.raises(IndexFileError, match="hashes of 32 bytes"):
        PDQIndex.load(saved)
    _rewrite(saved, "hashes", np.zeros((10, 32), dtype=np.uint8))
    _rewrite(saved, "ids", np.zeros(10, dtype="<i8"))
    with pytest.raises(IndexFileError, match="not unique"):
        PDQIndex.load(saved)


def test_load_rejects_bad_manifest(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    (saved / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(IndexFileError, match="version 99 is not supported"):
        PDQIndex.load(saved)
    (saved / "manifest.json").write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(IndexFileError, match="not a 'safestream-pdq-index'"):
        PDQIndex.load(saved)
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFileError, match="unreadable manifest"):
        PDQIndex.load(saved)
    assert issubclass(IndexFileError, InputError)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("hashes", "message"),
    [
        (np.zeros((2, 32), dtype=np.int64), "dtype uint8"),
        (np.zeros((2, 32), dtype=np.float32), "dtype uint8"),
        (np.zeros((2, 31), dtype=np.uint8), r"shape \(n, 32\)"),
        (np.zeros((2, 2, 32), dtype=np.uint8), r"shape \(n, 32\)"),
        (np.zeros(32, dtype=np.uint8), r"shape \(n, 32\)"),  # add needs (n, 32)
        ([[0] * 32, [0] * 32], "numpy uint8 array"),
        (b"\x00" * 64, "numpy uint8 array"),
    ],
)
def test_add_rejects_bad_hashes(hashes: object, message: str) -> None:
    index = PDQIndex()
    with pytest.raises(SignalValueError, match=message):
        index.add([1, 2], hashes)  # type: ignore[arg-type]
    assert len(index) == 0


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([1.0, 2.0], "must be integers"),
        (["a", "b"], "must be integers"),
        ([True, False], "must be integers"),
        ([[1], [2]], "one-dimensional"),
        (5, "one-dimensional"),
        (np.array([1, 2**64 - 1], dtype=np.uint64), "fit in int64"),
        ([1, 2**70], "integers"),
        ([1, 2, 3], "differ in length"),
    ],
)
def test_add_rejects_bad_ids(ids: object, message: str) -> None:
    index = PDQIndex()
    with pytest.raises(InputError, match=message):
        index.add(ids, np.zeros((2, 32), dtype=np.uint8))  # type: ignore[arg-type]
    assert len(index) == 0


@pytest.mark.parametrize("radius", [-1, 257, 3.5, True, "31", None])
def test_search_rejects_bad_radius(radius: object) -> None:
    index = PDQIndex()
    with pytest.raises(InputError, match="radius"):
        index.search(np.zeros(32, dtype=np.uint8), radius)  # type: ignore[arg-type]


def test_search_and_remove_reject_bad_input() -> None:
    index = PDQIndex()
    with pytest.raises(SignalValueError, match="queries must have shape"):
        index.search(np.zeros(31, dtype=np.uint8))
    with pytest.raises(SignalValueError, match="dtype uint8"):
        index.search(np.zeros((1, 32), dtype=np.int8))
    with pytest.raises(InputError, match="must be integers"):
        index.remove([1.5])
    with pytest.raises(InputError, match="an id must be an int"):
        index.get("1")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="delta_limit"):
        PDQIndex(delta_limit=0)
    with pytest.raises(InputError, match="method"):
        PDQIndex(method="fast")  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_batch_search_works_in_a_forked_child(rng: np.random.Generator) -> None:
    hashes = random_hashes(rng, 64)
    index = PDQIndex()
    index.add(np.arange(64), hashes)
    assert index.search(hashes)[5] == [(5, 0)]  # creates the thread pool
    pid = os.fork()
    if pid == 0:  # child: a batch must not wait on the parent's (absent) threads
        signal.alarm(60)  # a regression kills the child instead of hanging the suite
        ok = index.search(hashes)[7] == [(7, 0)]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_warm_up_compiles_the_kernels() -> None:
    assert pdq_index.warm_up() >= 0.0
