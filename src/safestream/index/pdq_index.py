"""Exact Hamming-radius index for PDQ hashes (multi-index hashing over compact tables).

Design, in short:

* **Substrings.** The 256 bits are cut into 11 substrings (3 of 24 bits, 8 of 23
  bits). If two hashes differ in at most ``r`` bits, then by pigeonhole at least
  one substring differs in at most ``r // 11`` bits (2 for the PDQ threshold 31,
  and for 32). A query probes, in each of the 11 tables, every bucket whose key
  is within that sub-radius of its own key (about 3,100 buckets for radius 31),
  and every candidate found is verified against the full hash. So the search is
  exact: nothing within the radius is missed and nothing beyond it is returned.
* **Tables.** Each table is a dense ``uint32`` array with one entry per key: empty,
  the one row with that key (the common case), or a pointer into an overflow
  array holding the bucket's count and rows (see ``mih_kernels``). A table's key
  is the first ``key_bits`` bits of its substring, where ``key_bits`` grows with
  the index (about log2 of its size, at most the substring length) so that a small
  index does not carry hundreds of megabytes of empty entries; a shorter key only
  adds candidates.
* **Duplicates.** A hash that several tables find is reported only by the first
  table whose key is within the sub-radius, which costs nothing extra: no
  per-query "seen" array.
* **Changes.** The tables are immutable. New hashes go to a small *delta* that is
  scanned by brute force; removed ones become *tombstones* (dead rows). When the
  delta (or the tombstones) outgrow a threshold, a *merge* builds new tables off
  to the side and swaps them in; searches carry on against the old ones
  meanwhile. Every change publishes a new immutable snapshot, so a search never
  takes a lock and a change is visible to the next search as soon as it returns.
* **Large radii.** When the sub-radius makes probing costlier than a scan
  (radius above ~54, or a small index), the main table is scanned instead; both
  paths are exact.

Adding an id that is already present replaces its hash (upsert); within one
``add`` call the last occurrence of an id wins.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from safestream.cores import usable_cores
from safestream.errors import InputError, SignalValueError
from safestream.index import mih_kernels
from safestream.index.storage import IndexFileError, read_arrays, write_arrays

__all__ = ["DEFAULT_RADIUS", "HASH_BYTES", "MAX_RADIUS", "PDQIndex", "SearchMethod", "warm_up"]

HASH_BYTES = 32
"""Bytes in one PDQ hash (256 bits)."""
MAX_RADIUS = 256
"""Largest meaningful Hamming radius for a 256-bit hash."""
DEFAULT_RADIUS = 31
"""The usual PDQ match threshold (distance <= 31)."""

FORMAT_NAME = "safestream-pdq-index"
FORMAT_VERSION = 1

SearchMethod = Literal["auto", "mih", "brute"]

IdArray = npt.NDArray[np.int64]
HashRows = npt.NDArray[np.uint64]
Results = list[list[tuple[int, int]]]

_ArrayT = TypeVar("_ArrayT", bound="np.ndarray[Any, Any]")

_SUB_LENGTHS = (24, 24, 24, 23, 23, 23, 23, 23, 23, 23, 23)
_SUB_STARTS = tuple(int(s) for s in np.cumsum((0, *_SUB_LENGTHS[:-1])))
_MIN_KEY_BITS = 8
# Beyond this sub-radius the flip masks alone run to tens of thousands per table.
_MAX_SUB_RADIUS = 4
_INITIAL_CAP = 16
# Below this many queries a batch runs in the calling thread.
_PARALLEL_MIN_QUERIES = 4
# Row numbers share a uint32 table entry with a flag bit (see mih_kernels).
_MAX_ROWS = 1 << 30
# Every array handed to a kernel is read-only (queries and outputs aside):
# numba compiles one specialisation per read-only/writable combination, so a
# mix would mean a fresh multi-second compile in the middle of serving.
_EMPTY_IDS: IdArray = np.empty(0, dtype=np.int64)
_EMPTY_IDS.setflags(write=False)
_EMPTY_ROWS: HashRows = np.empty((0, 4), dtype=np.uint64)
_EMPTY_ROWS.setflags(write=False)

_pool_lock = threading.Lock()
_pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}


def _forget_pools_after_fork() -> None:
    # A forked child (e.g. a pre-forking server worker) inherits the pools but
    # not their threads: work submitted there would wait forever.
    global _pool_lock
    _pool_lock = threading.Lock()
    _pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


@functools.cache
def _workers() -> int:
    # Cores this process may run on, read once (a batch is split across them).
    return usable_cores()


def _thread_pool(kind: Literal["search", "build"]) -> concurrent.futures.ThreadPoolExecutor:
    """The shared worker threads for batch searches, or for table builds.

    The kernels release the GIL, so plain threads use every core (numba's own
    parallel layer, "workqueue", is not safe to enter from several threads).
    Builds get their own pool so that a long merge never queues ahead of searches.
    """
    with _pool_lock:
        pool = _pools.get(kind)
        if pool is None:
            pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=_workers(), thread_name_prefix=f"safestream-index-{kind}"
            )
            _pools[kind] = pool
        return pool


@functools.lru_cache(maxsize=64)
def _flip_masks(nbits: int, sub_radius: int) -> npt.NDArray[np.uint32]:
    """All ``nbits``-bit masks with at most ``sub_radius`` bits set (read-only)."""
    masks = [0]
    for k in range(1, min(sub_radius, nbits) + 1):
        for combo in itertools.combinations(range(nbits), k):
            masks.append(sum(1 << b for b in combo))
    out = np.array(masks, dtype=np.uint32)
    out.setflags(write=False)
    return out


def _key_bits_for(n: int) -> tuple[int, ...]:
    want = max(_MIN_KEY_BITS, math.ceil(math.log2(max(n, 2))))
    return tuple(min(length, want) for length in _SUB_LENGTHS)


def _readonly(array: _ArrayT) -> _ArrayT:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class _Main:
    """The immutable, merged part of the index: rows sorted by id, and the tables."""

    ids: IdArray
    hashes: HashRows
    entries: npt.NDArray[np.uint32]
    overflow: npt.NDArray[np.uint32]
    key_bits: tuple[int, ...]
    entry_bases: tuple[int, ...]
    overflow_bases: tuple[int, ...]
    _plans: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.uint32]]] = field(
        default_factory=dict, repr=False
    )
    _costs: dict[int, float] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    def plan(self, sub_radius: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint32]]:
        """Table metadata and concatenated flip masks for one sub-radius (cached)."""
        cached = self._plans.get(sub_radius)
        if cached is not None:
            return cached
        mask_parts: list[npt.NDArray[np.uint32]] = []
        mask_base: dict[int, int] = {}
        total = 0
        for bits in sorted(set(self.key_bits)):
            masks = _flip_masks(bits, sub_radius)
            mask_base[bits] = total
            mask_parts.append(masks)
            total += masks.shape[0]
        meta = np.array(
            [
                (
                    _SUB_STARTS[t],
                    bits,
                    self.entry_bases[t],
                    self.overflow_bases[t],
                    mask_base[bits],
                    _flip_masks(bits, sub_radius).shape[0],
                )
                for t, bits in enumerate(self.key_bits)
            ],
            dtype=np.int64,
        )
        result = (_readonly(meta), _readonly(np.concatenate(mask_parts)))
        # A benign race: two threads may both compute the same plan.
        self._plans[sub_radius] = result
        return result

    def probe_cost(self, sub_radius: int) -> float:
        """Rough cost of one MIH query, in units of one scanned row (cached)."""
        cached = self._costs.get(sub_radius)
        if cached is not None:
            return cached
        cost = 0.0
        for bits in self.key_bits:
            probes = sum(math.comb(bits, k) for k in range(min(sub_radius, bits) + 1))
            # A probe is one cache miss, a candidate one or two; a scanned row
            # costs a small fraction of a miss because the scan streams.
            cost += probes * (1.0 + 2.0 * self.size / (1 << bits)) * 8.0
        self._costs[sub_radius] = cost
        return cost

    @property
    def nbytes(self) -> int:
        return int(
            self.ids.nbytes + self.hashes.nbytes + self.entries.nbytes + self.overflow.nbytes
        )


def _build_main(ids: IdArray, hashes: HashRows) -> _Main:
    """Build the tables for ``ids`` (sorted, unique) and their hash rows."""
    n = int(ids.shape[0])
    if n > _MAX_ROWS:
        raise InputError(f"a PDQIndex holds at most {_MAX_ROWS} hashes, not {n}")
    key_bits = _key_bits_for(n)
    bases = [0]
    for bits in key_bits:
        bases.append(bases[-1] + (1 << bits))
    entries = np.empty(bases[-1], dtype=np.uint32)
    overflows: list[npt.NDArray[np.uint32]] = [np.empty(0, dtype=np.uint32)] * len(key_bits)

    def build(t: int) -> None:
        overflows[t] = mih_kernels.build_table(
            hashes, _SUB_STARTS[t], key_bits[t], entries[bases[t] : bases[t + 1]]
        )

    if n == 0:
        entries[:] = mih_kernels.EMPTY  # no kernel call: importing this module must not compile
    elif n >= 100_000 and _workers() > 1:
        list(_thread_pool("build").map(build, range(len(key_bits))))
    else:
        for t in range(len(key_bits)):
            build(t)
    overflow_bases = np.cumsum([0] + [o.shape[0] for o in overflows[:-1]]).tolist()
    return _Main(
        ids=_readonly(ids),
        hashes=_readonly(hashes),
        entries=_readonly(entries),
        overflow=_readonly(np.concatenate(overflows)),
        key_bits=key_bits,
        entry_bases=tuple(bases[:-1]),
        overflow_bases=tuple(int(b) for b in overflow_bases),
    )


_EMPTY_MAIN = _build_main(_EMPTY_IDS, _EMPTY_ROWS)


@dataclass(frozen=True, eq=False)
class _State:
    """One immutable snapshot of the whole index; every change publishes a new one."""

    main: _Main
    dead: IdArray  # sorted rows of ``main`` that were removed or replaced
    delta_ids: IdArray
    delta_hashes: HashRows
    delta_seq: IdArray  # change number of each delta entry, to reconcile merges

    def __len__(self) -> int:
        return self.main.size - int(self.dead.shape[0]) + int(self.delta_ids.shape[0])


def _as_ids(ids: Sequence[int] | npt.ArrayLike, what: str = "ids") -> IdArray:
    """Validate ids and return them as a 1-D int64 array."""
    try:
        arr = np.asarray(ids)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{what} must be a sequence of integers: {exc}") from exc
    if arr.ndim != 1:
        raise InputError(
            f"{what} must be one-dimensional (a sequence of ints), got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        return _EMPTY_IDS
    if arr.dtype.kind not in "iu":
        raise InputError(
            f"{what} must be integers that fit in int64, got dtype {arr.dtype} "
            f"(e.g. {arr.flat[0]!r})"
        )
    if arr.dtype.kind == "u" and int(arr.max()) > np.iinfo(np.int64).max:
        raise InputError(f"{what} must fit in int64; the largest is {int(arr.max())}")
    return arr.astype(np.int64, copy=False)


def _as_rows(hashes: Any, what: str, *, allow_single: bool) -> HashRows:
    """Validate a uint8 ``(n, 32)`` array (or one ``(32,)`` row) and view it as uint64 rows."""
    if not isinstance(hashes, np.ndarray):
        raise SignalValueError(
            f"{what} must be a numpy uint8 array of shape (n, {HASH_BYTES}) "
            f"(bytes.fromhex of each 64-hex PDQ hash), got {type(hashes).__name__}"
        )
    if hashes.dtype != np.uint8:
        raise SignalValueError(
            f"{what} must have dtype uint8 (the 32 bytes of each PDQ hash), got {hashes.dtype}"
        )
    if allow_single and hashes.shape == (HASH_BYTES,):
        hashes = hashes.reshape(1, HASH_BYTES)
    if hashes.ndim != 2 or hashes.shape[1] != HASH_BYTES:
        shape = f"(n, {HASH_BYTES})" + (f" or ({HASH_BYTES},)" if allow_single else "")
        raise SignalValueError(f"{what} must have shape {shape}, got {hashes.shape}")
    rows = np.ascontiguousarray(hashes).view("<u8").astype(np.uint64, copy=False)
    # Writable, for the same one-specialisation reason as _EMPTY_IDS.
    return rows if rows.flags.writeable else rows.copy()


def _check_radius(radius: object) -> int:
    if isinstance(radius, bool) or not isinstance(radius, int | np.integer):
        raise InputError(f"radius must be an int in 0..{MAX_RADIUS}, got {radius!r}")
    value = int(radius)
    if not 0 <= value <= MAX_RADIUS:
        raise InputError(f"radius must be in 0..{MAX_RADIUS} bits, got {value}")
    return value


def _rows_to_bytes(rows: HashRows) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(rows.astype("<u8", copy=False)).view(np.uint8)


class PDQIndex:
    """Exact index of PDQ hashes: every stored hash within a Hamming radius, nothing more.

    Thread-safe: any number of threads may search while others add and remove.
    ``add`` upserts (an id already present gets the new hash). See the module
    docstring for the design.
    """

    def __init__(self, *, delta_limit: int = 16_384, method: SearchMethod = "auto") -> None:
        """Create an empty index.

        ``delta_limit`` is how many recent additions are held in the brute-force
        delta (and how many tombstones are tolerated, at least) before a merge
        rebuilds the tables; ``method`` forces "mih" or "brute" (for tests and
        benchmarks; "mih" still scans when the radius is too large to probe).
        """
        if isinstance(delta_limit, bool) or not isinstance(delta_limit, int) or delta_limit < 1:
            raise InputError(f"delta_limit must be a positive int, got {delta_limit!r}")
        if method not in ("auto", "mih", "brute"):
            raise InputError(f"method must be 'auto', 'mih' or 'brute', got {method!r}")
        self._delta_limit = delta_limit
        self._method: SearchMethod = method
        self._lock = threading.Lock()  # serialises changes; searches take none
        self._merge_lock = threading.Lock()  # one merge at a time
        self._next_seq = 0
        self._state = _State(_EMPTY_MAIN, _EMPTY_IDS, _EMPTY_IDS, _EMPTY_ROWS, _EMPTY_IDS)

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        """Return the number of live entries."""
        return len(self._state)

    def __repr__(self) -> str:
        """Summarise size, delta and tombstones (never the hashes)."""
        s = self._state
        return (
            f"PDQIndex(len={len(s)}, main={s.main.size}, delta={s.delta_ids.shape[0]}, "
            f"tombstones={s.dead.shape[0]})"
        )

    @property
    def delta_limit(self) -> int:
        """How many delta entries trigger a merge."""
        return self._delta_limit

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (tables, hashes, ids, delta)."""
        s = self._state
        return int(
            s.main.nbytes
            + s.dead.nbytes
            + s.delta_ids.nbytes
            + s.delta_hashes.nbytes
            + s.delta_seq.nbytes
        )

    def _lookup(self, state: _State, key: int) -> HashRows | None:
        if not -(1 << 63) <= key < (1 << 63):
            return None  # cannot be stored; numpy would raise OverflowError
        hit = np.flatnonzero(state.delta_ids == key)
        if hit.size:
            return state.delta_hashes[hit[0] : hit[0] + 1]
        ids = state.main.ids
        pos = int(np.searchsorted(ids, key))
        if pos < ids.shape[0] and int(ids[pos]) == key:
            d = int(np.searchsorted(state.dead, pos))
            if not (d < state.dead.shape[0] and int(state.dead[d]) == pos):
                return state.main.hashes[pos : pos + 1]
        return None

    def __contains__(self, key: object) -> bool:
        """Return whether ``key`` is a live id."""
        if isinstance(key, bool) or not isinstance(key, int | np.integer):
            return False
        return self._lookup(self._state, int(key)) is not None

    def get(self, key: int) -> bytes | None:
        """Return the 32-byte hash stored under id ``key``, or None if absent."""
        if isinstance(key, bool) or not isinstance(key, int | np.integer):
            raise InputError(f"an id must be an int, got {key!r}")
        row = self._lookup(self._state, int(key))
        return None if row is None else _rows_to_bytes(row).tobytes()

    def ids(self) -> IdArray:
        """Return every live id, sorted ascending, as an int64 array."""
        return self.export()[0]

    def export(self) -> tuple[IdArray, npt.NDArray[np.uint8]]:
        """Return (ids, hashes) of every live entry, sorted by id; hashes as uint8 (n, 32)."""
        ids, rows = self._live(self._state)
        return ids, _rows_to_bytes(rows).reshape(-1, HASH_BYTES)

    @staticmethod
    def _live(state: _State) -> tuple[IdArray, HashRows]:
        main = state.main
        keep = np.ones(main.size, dtype=bool)
        keep[state.dead] = False
        ids = np.concatenate([main.ids[keep], state.delta_ids])
        rows = np.concatenate([main.hashes[keep], state.delta_hashes])
        order = np.argsort(ids, kind="stable")
        return ids[order], rows[order]

    # ------------------------------------------------------------------ search

    def search(self, queries: npt.NDArray[np.uint8], radius: int = DEFAULT_RADIUS) -> Results:
        """Return, per query row, every (id, distance) with distance <= ``radius``.

        ``queries`` is uint8 ``(m, 32)`` or one ``(32,)`` row (treated as m = 1).
        Each list is sorted by (distance, id). Exact for every radius 0..256.
        """
        rows = _as_rows(queries, "queries", allow_single=True)
        r = _check_radius(radius)
        state = self._state  # one consistent snapshot for the whole call
        m = rows.shape[0]
        workers = _workers()
        if m < _PARALLEL_MIN_QUERIES or workers == 1:
            return self._search_rows(state, rows, r)
        chunks = np.array_split(np.arange(m), min(m, workers * 4))
        parts = _thread_pool("search").map(
            lambda c: self._search_rows(state, rows[c[0] : c[-1] + 1], r), chunks
        )
        return [hits for part in parts for hits in part]

    def _use_mih(self, main: _Main, sub_radius: int) -> bool:
        if self._method == "brute" or sub_radius > _MAX_SUB_RADIUS or main.size == 0:
            return False
        return self._method == "mih" or main.probe_cost(sub_radius) < main.size

    def _run(
        self, state: _State, rows: HashRows, radius: int, cap: int
    ) -> tuple[IdArray, npt.NDArray[np.int32], IdArray]:
        """One kernel call over ``rows``: (ids, distances, counts), ``cap`` slots per query."""
        m = rows.shape[0]
        out_ids = np.empty((m, cap), dtype=np.int64)
        out_dist = np.empty((m, cap), dtype=np.int32)
        counts = np.empty(m, dtype=np.int64)
        main = state.main
        sub_radius = radius // len(_SUB_LENGTHS)
        if self._use_mih(main, sub_radius):
            meta, masks = main.plan(sub_radius)
            mih_kernels.search_mih(
                rows,
                main.hashes,
                main.ids,
                state.dead,
                main.entries,
                meta,
                main.overflow,
                masks,
                sub_radius,
                radius,
                state.delta_hashes,
                state.delta_ids,
                out_ids,
                out_dist,
                counts,
            )
        else:
            mih_kernels.search_brute(
                rows,
                main.hashes,
                main.ids,
                state.dead,
                radius,
                state.delta_hashes,
                state.delta_ids,
                out_ids,
                out_dist,
                counts,
            )
        return out_ids, out_dist, counts

    def _search_rows(self, state: _State, rows: HashRows, radius: int) -> Results:
        """Search query rows (uint64, (m, 4)) against one snapshot."""
        out_ids, out_dist, counts = self._run(state, rows, radius, _INITIAL_CAP)
        id_lists: list[list[int]] = out_ids.tolist()
        dist_lists: list[list[int]] = out_dist.tolist()
        results: Results = []
        for i, count in enumerate(counts.tolist()):
            results.append(list(zip(id_lists[i][:count], dist_lists[i][:count], strict=True)))
        if int(counts.max(initial=0)) > _INITIAL_CAP:
            over = np.flatnonzero(counts > _INITIAL_CAP)
            # The kernel counted every match but kept only the first few: run those
            # queries again with room for all of them (the snapshot is immutable,
            # so the second run finds exactly the same matches).
            big_ids, big_dist, big_counts = self._run(
                state, np.ascontiguousarray(rows[over]), radius, int(counts[over].max())
            )
            for j, i in enumerate(over.tolist()):
                count = int(big_counts[j])
                results[i] = list(
                    zip(big_ids[j, :count].tolist(), big_dist[j, :count].tolist(), strict=True)
                )
        return results

    # ------------------------------------------------------------------ changes

    def add(self, ids: Sequence[int] | npt.ArrayLike, hashes: npt.NDArray[np.uint8]) -> None:
        """Add (or replace) ``hashes[i]`` under ``ids[i]``; matchable as soon as this returns.

        An id already in the index gets the new hash (upsert); within one call the
        last occurrence of an id wins. May run a merge (see ``delta_limit``).
        """
        id_arr = _as_ids(ids)
        rows = _as_rows(hashes, "hashes", allow_single=False)
        if id_arr.shape[0] != rows.shape[0]:
            raise InputError(
                f"ids and hashes differ in length: {id_arr.shape[0]} ids, {rows.shape[0]} hashes"
            )
        if id_arr.shape[0] == 0:
            return
        # Keep the last occurrence of each id: unique() on the reversed array
        # returns first occurrences there.
        uniq, first_rev = np.unique(id_arr[::-1], return_index=True)
        last = id_arr.shape[0] - 1 - first_rev
        new_rows = np.array(rows[last], dtype=np.uint64, order="C")  # own copy
        with self._lock:
            state = self._state
            if len(state) + uniq.shape[0] > _MAX_ROWS:
                raise InputError(f"a PDQIndex holds at most {_MAX_ROWS} hashes")
            main_rows = self._main_rows(state.main, uniq)
            dead = np.union1d(state.dead, main_rows) if main_rows.size else state.dead
            keep = ~np.isin(state.delta_ids, uniq)
            seq = np.arange(self._next_seq, self._next_seq + uniq.shape[0], dtype=np.int64)
            self._next_seq += uniq.shape[0]
            self._state = _State(
                main=state.main,
                dead=_readonly(dead),
                delta_ids=_readonly(np.concatenate([state.delta_ids[keep], uniq])),
                delta_hashes=_readonly(np.concatenate([state.delta_hashes[keep], new_rows])),
                delta_seq=_readonly(np.concatenate([state.delta_seq[keep], seq])),
            )
            merge = self._needs_merge(self._state)
        if merge:
            self._merge(only_if_needed=True)

    def remove(self, ids: Sequence[int] | npt.ArrayLike) -> int:
        """Remove the given ids; unknown ids are ignored. Returns how many were removed."""
        id_arr = np.unique(_as_ids(ids))
        if id_arr.shape[0] == 0:
            return 0
        with self._lock:
            state = self._state
            main_rows = self._main_rows(state.main, id_arr)
            live_rows = main_rows[~np.isin(main_rows, state.dead)]
            in_delta = np.isin(state.delta_ids, id_arr)
            removed = int(live_rows.shape[0] + np.count_nonzero(in_delta))
            if removed == 0:
                return 0
            keep = ~in_delta
            self._state = _State(
                main=state.main,
                dead=_readonly(np.union1d(state.dead, live_rows)),
                delta_ids=_readonly(state.delta_ids[keep]),
                delta_hashes=_readonly(state.delta_hashes[keep]),
                delta_seq=_readonly(state.delta_seq[keep]),
            )
            merge = self._needs_merge(self._state)
        if merge:
            self._merge(only_if_needed=True)
        return removed

    @staticmethod
    def _main_rows(main: _Main, ids: IdArray) -> IdArray:
        """Rows of ``main`` holding any of ``ids`` (dead or alive)."""
        if main.size == 0:
            return _EMPTY_IDS
        pos = np.searchsorted(main.ids, ids)
        pos[pos >= main.size] = 0
        hit: npt.NDArray[np.bool_] = main.ids[pos] == ids
        return pos[hit].astype(np.int64)

    def _needs_merge(self, state: _State) -> bool:
        delta, dead = int(state.delta_ids.shape[0]), int(state.dead.shape[0])
        return delta > self._delta_limit or dead > max(self._delta_limit, state.main.size // 4)

    def merge(self) -> None:
        """Fold the delta and the tombstones into freshly built tables.

        Runs automatically when the delta outgrows ``delta_limit``. The build runs
        without the change lock, against a snapshot, and searches keep using the
        previous tables until the swap; changes made meanwhile are carried over.
        """
        self._merge(only_if_needed=False)

    def _merge(self, *, only_if_needed: bool) -> None:
        with self._merge_lock:
            with self._lock:
                snap = self._state
            if snap.delta_ids.shape[0] == 0 and snap.dead.shape[0] == 0:
                return
            if only_if_needed and not self._needs_merge(snap):
                return  # a merge that finished while we waited for the lock did it
            ids, rows = self._live(snap)
            new_main = _build_main(np.ascontiguousarray(ids), np.ascontiguousarray(rows))
            with self._lock:
                cur = self._state
                # Rows of the old main that died after the snapshot, and snapshot
                # delta entries since removed or replaced: all are in new_main
                # but no longer live.
                late_dead = np.setdiff1d(cur.dead, snap.dead, assume_unique=True)
                gone = ~np.isin(snap.delta_seq, cur.delta_seq)
                dead_ids = np.concatenate([snap.main.ids[late_dead], snap.delta_ids[gone]])
                dead_rows = np.sort(np.searchsorted(new_main.ids, dead_ids)).astype(np.int64)
                fresh = ~np.isin(cur.delta_seq, snap.delta_seq)
                self._state = _State(
                    main=new_main,
                    dead=_readonly(dead_rows),
                    delta_ids=_readonly(cur.delta_ids[fresh]),
                    delta_hashes=_readonly(cur.delta_hashes[fresh]),
                    delta_seq=_readonly(cur.delta_seq[fresh]),
                )

    # ------------------------------------------------------------------ persistence

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Save the live entries to ``directory`` (ids.npy, hashes.npy, manifest.json)."""
        ids, hashes = self.export()
        return write_arrays(
            directory,
            format_name=FORMAT_NAME,
            version=FORMAT_VERSION,
            arrays={"ids": ids.astype("<i8"), "hashes": hashes},
            extra={"count": int(ids.shape[0]), "delta_limit": self._delta_limit},
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, method: SearchMethod = "auto") -> PDQIndex:
        """Load an index saved by :meth:`save`; raises ``IndexFileError`` if it is damaged."""
        manifest, arrays = read_arrays(
            directory,
            format_name=FORMAT_NAME,
            versions=frozenset({FORMAT_VERSION}),
            expected={"ids": ("<i8", 1), "hashes": ("|u1", 2)},
        )
        ids, hashes = arrays["ids"], arrays["hashes"]
        where = Path(directory)
        if hashes.shape[1] != HASH_BYTES or hashes.shape[0] != ids.shape[0]:
            raise IndexFileError(
                f"{where}: expected {ids.shape[0]} hashes of {HASH_BYTES} bytes, "
                f"found shape {hashes.shape}"
            )
        if manifest.get("count") != ids.shape[0]:
            raise IndexFileError(f"{where}: manifest count does not match the saved ids")
        ids = ids.astype(np.int64)
        if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise IndexFileError(f"{where}: saved ids are not unique and sorted (corrupt index)")
        delta_limit = manifest.get("delta_limit", 16_384)
        if isinstance(delta_limit, bool) or not isinstance(delta_limit, int) or delta_limit < 1:
            raise IndexFileError(f"{where}: invalid delta_limit {delta_limit!r} in manifest")
        index = cls(delta_limit=delta_limit, method=method)
        rows = _as_rows(hashes, "hashes", allow_single=False)
        main = _build_main(np.ascontiguousarray(ids), np.array(rows, dtype=np.uint64))
        index._state = _State(main, _EMPTY_IDS, _EMPTY_IDS, _EMPTY_ROWS, _EMPTY_IDS)
        return index


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) every kernel; return the seconds taken.

    The first use of the index in a process pays this: a few seconds on a cold
    cache, well under one with a warm one. Call it at service start so that the
    first real lookup does not.
    """
    started = time.perf_counter()
    index = PDQIndex(delta_limit=1, method="mih")
    index.add([0, 1], np.zeros((2, HASH_BYTES), dtype=np.uint8))  # merges: builds tables
    index.add([2], np.ones((1, HASH_BYTES), dtype=np.uint8))  # stays in the delta
    index.search(np.zeros(HASH_BYTES, dtype=np.uint8))
    index.search(np.zeros(HASH_BYTES, dtype=np.uint8), MAX_RADIUS)  # the scan kernel
    return time.perf_counter() - started
