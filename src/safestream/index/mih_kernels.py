"""Compiled (numba) kernels behind :class:`~safestream.index.pdq_index.PDQIndex`.

Hashes are rows of four little-endian ``uint64`` words (one 32-byte cache line per
hash). Each multi-index-hashing table is a dense ``uint32`` array with one *entry*
per key, plus an *overflow* array:

* ``EMPTY``: no row has this key;
* ``SINGLE | row``: exactly one row has it -- the common case at about one row
  per key, and it saves a cache miss per probe over a plain CSR layout
  (offsets, then row numbers, then the hash);
* anything else: an index into the overflow array, where the bucket's row count
  is followed by its rows.

The tables' entries and overflows are concatenated into two flat arrays so that a
kernel call takes few arguments (numba's dispatch cost grows with their number).
Every kernel is ``nogil`` so that searches from several Python threads run in
parallel, and ``cache=True`` so that the JIT cost is paid once per machine.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.extending import intrinsic

_U1 = np.uint64(1)
# How many loads ahead the search kernel prefetches: measured on a 2-core AMD
# EPYC at 10M hashes, 16 beat prefetching a whole pass ahead (and 8, 32, 64).
_PREFETCH_AHEAD = 16
EMPTY = np.uint32(0xFFFFFFFF)
"""Entry of a key that no row has."""
SINGLE = np.uint32(0x80000000)
"""Flag of an entry that holds the one row of its key (rows stay below 2**30)."""
_PENDING = np.uint32(0xFFFFFFFE)  # during a build: a single-row key not yet filled


def _popcount64_typer(typingctx: Any, x: Any) -> Any:
    if not isinstance(x, types.Integer) or getattr(x, "bitwidth", 0) != 64:
        return None
    sig = types.int64(x)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, [args[0]])

    return sig, codegen


popcount64: Any = intrinsic(_popcount64_typer)
"""Number of set bits of a 64-bit integer, inside numba code (LLVM ``ctpop``: one instruction)."""


def _prefetch_typer(typingctx: Any, array: Any, index: Any) -> Any:
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None
    sig = types.void(array, index)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        arytype, idxtype = signature.args
        ary = context.make_array(arytype)(context, builder, args[0])
        idx = context.cast(builder, args[1], idxtype, types.intp)
        # Flat element offset from the data pointer: valid for C-contiguous arrays
        # of any rank (callers pass row * row_length for 2-D arrays).
        ptr = builder.gep(ary.data, [idx])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        # read, keep in all cache levels, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


prefetch: Any = intrinsic(_prefetch_typer)
"""Hint the CPU to fetch flat element ``index`` of a C-contiguous array; no bounds check."""


@numba.njit(nogil=True, cache=True, inline="always")  # type: ignore[misc,unused-ignore]
def _key(h: Any, row: int, start: int, nbits: int) -> Any:
    # Bits [start, start + nbits) of the 256-bit row, word 0 holding bits 0..63.
    w = start >> 6
    off = start & 63
    v = h[row, w] >> np.uint64(off)
    if off + nbits > 64:
        v |= h[row, w + 1] << np.uint64(64 - off)
    return v & ((_U1 << np.uint64(nbits)) - _U1)


@numba.njit(nogil=True, cache=True, inline="always")  # type: ignore[misc,unused-ignore]
def _distance(h: Any, row: int, q0: Any, q1: Any, q2: Any, q3: Any) -> Any:
    return (
        popcount64(h[row, 0] ^ q0)
        + popcount64(h[row, 1] ^ q1)
        + popcount64(h[row, 2] ^ q2)
        + popcount64(h[row, 3] ^ q3)
    )


@numba.njit(nogil=True, cache=True, inline="always")  # type: ignore[misc,unused-ignore]
def _is_dead(dead: Any, row: int) -> bool:
    if dead.shape[0] == 0:
        return False
    i = np.searchsorted(dead, row)
    return bool(i < dead.shape[0] and dead[i] == row)


@numba.njit(nogil=True, cache=True)  # type: ignore[misc,unused-ignore]
def build_table(hashes: Any, start: int, nbits: int, entries: Any) -> Any:
    """Fill one table's ``entries`` (``2**nbits``) and return its overflow array.

    Two passes over the rows (count, then place), O(rows + keys); rows keep
    ascending order inside a bucket. Requires fewer than 2**30 rows.
    """
    n = hashes.shape[0]
    nb = 1 << nbits
    keys = np.empty(n, dtype=np.uint32)
    counts = np.zeros(nb, dtype=np.uint32)
    for r in range(n):
        k = _key(hashes, r, start, nbits)
        keys[r] = np.uint32(k)
        counts[k] += 1
    size = 0
    for b in range(nb):
        c = counts[b]
        if c == 0:
            entries[b] = EMPTY
        elif c == 1:
            entries[b] = _PENDING
        else:
            entries[b] = np.uint32(size)
            size += 1 + c
    # Each overflow bucket: its count (used as the fill cursor while building),
    # then its rows.
    overflow = np.zeros(size, dtype=np.uint32)
    for r in range(n):
        k = keys[r]
        e = entries[k]
        if e == _PENDING:
            entries[k] = np.uint32(r) | SINGLE
        else:
            c = overflow[e]
            overflow[e + 1 + c] = np.uint32(r)
            overflow[e] = c + 1
    return overflow


@numba.njit(nogil=True, cache=True)  # type: ignore[misc,unused-ignore]
def _scan(
    qi: int,
    queries: Any,
    hashes: Any,
    ids: Any,
    dead: Any,
    radius: int,
    out_ids: Any,
    out_dist: Any,
    found: int,
) -> int:
    # Brute-force range scan of every row for one query; appends after ``found``.
    cap = out_ids.shape[1]
    q0 = queries[qi, 0]
    q1 = queries[qi, 1]
    q2 = queries[qi, 2]
    q3 = queries[qi, 3]
    for row in range(hashes.shape[0]):
        d = _distance(hashes, row, q0, q1, q2, q3)
        if d <= radius and not _is_dead(dead, row):
            if found < cap:
                out_ids[qi, found] = ids[row]
                out_dist[qi, found] = d
            found += 1
    return found


@numba.njit(nogil=True, cache=True)  # type: ignore[misc,unused-ignore]
def _finish(qi: int, out_ids: Any, out_dist: Any, found: int, counts: Any) -> None:
    # Sort one query's matches by (distance, id): insertion sort, as they are few.
    n = min(found, out_ids.shape[1])
    for a in range(1, n):
        key_d = out_dist[qi, a]
        key_i = out_ids[qi, a]
        b = a - 1
        while b >= 0 and (
            out_dist[qi, b] > key_d or (out_dist[qi, b] == key_d and out_ids[qi, b] > key_i)
        ):
            out_dist[qi, b + 1] = out_dist[qi, b]
            out_ids[qi, b + 1] = out_ids[qi, b]
            b -= 1
        out_dist[qi, b + 1] = key_d
        out_ids[qi, b + 1] = key_i
    counts[qi] = found


@numba.njit(nogil=True, cache=True)  # type: ignore[misc,unused-ignore]
def search_mih(
    queries: Any,
    hashes: Any,
    ids: Any,
    dead: Any,
    entries: Any,
    table_meta: Any,
    overflow: Any,
    masks: Any,
    sub_radius: int,
    radius: int,
    delta_hashes: Any,
    delta_ids: Any,
    out_ids: Any,
    out_dist: Any,
    counts: Any,
) -> None:
    """Exact range search: the main rows through the multi-index tables, plus a delta scan.

    ``table_meta[t]`` = (key start bit, key bits, entries base, overflow base,
    masks base, masks count). Each main match is reported once, by the first
    table whose key is within ``sub_radius`` of the query's key (the same test
    that made that table's probe find it), so no "seen" array is needed.
    Writes each query's (id, distance) matches sorted by (distance, id) and their
    number to ``counts``; matches beyond ``out_ids.shape[1]`` are counted but not
    written, and the caller re-runs such queries with room for all of them.
    """
    n_tables = table_meta.shape[0]
    cap = out_ids.shape[1]
    n_probes = 0
    for t in range(n_tables):
        n_probes += table_meta[t, 5]
    bucket = np.empty(n_probes, dtype=np.int64)
    probe_table = np.empty(n_probes, dtype=np.int64)
    multi = np.empty(n_probes, dtype=np.int64)
    multi_table = np.empty(n_probes, dtype=np.int64)
    cand = np.empty(2 * n_probes + 1024, dtype=np.int64)
    cand_table = np.empty(cand.shape[0], dtype=np.int64)
    qkeys = np.empty(n_tables, dtype=np.uint64)
    ahead = _PREFETCH_AHEAD
    for qi in range(queries.shape[0]):
        q0 = queries[qi, 0]
        q1 = queries[qi, 1]
        q2 = queries[qi, 2]
        q3 = queries[qi, 3]
        # Passes over all tables' probes -- keys, entries, overflow buckets,
        # verification -- each a loop of independent loads with a software
        # prefetch a fixed distance ahead, so that many cache misses are in
        # flight at once instead of one dependent chain per probe (the tables
        # are far larger than the caches: nearly every load misses).
        i = 0
        for t in range(n_tables):
            key = _key(queries, qi, table_meta[t, 0], table_meta[t, 1])
            qkeys[t] = key
            eb = table_meta[t, 2]
            mb = table_meta[t, 4]
            for j in range(table_meta[t, 5]):
                bucket[i] = eb + np.int64(key ^ np.uint64(masks[mb + j]))
                probe_table[i] = t
                i += 1
        for i in range(min(ahead, n_probes)):
            prefetch(entries, bucket[i])
        nc = 0
        nm = 0
        for i in range(n_probes):
            if i + ahead < n_probes:
                prefetch(entries, bucket[i + ahead])
            e = entries[bucket[i]]
            if e == EMPTY:
                continue
            t = probe_table[i]
            if e & SINGLE:
                row = np.int64(e & ~SINGLE)
                cand[nc] = row
                cand_table[nc] = t
                prefetch(hashes, row * 4)
                nc += 1
            else:
                at = table_meta[t, 3] + np.int64(e)
                multi[nm] = at
                multi_table[nm] = t
                prefetch(overflow, at)
                nm += 1
        total: Any = nc
        for m in range(nm):
            total += np.int64(overflow[multi[m]])
        if total > cand.shape[0]:
            grown = np.empty(2 * total, dtype=np.int64)
            grown_table = np.empty(2 * total, dtype=np.int64)
            grown[:nc] = cand[:nc]
            grown_table[:nc] = cand_table[:nc]
            cand = grown
            cand_table = grown_table
        for m in range(nm):
            at = multi[m]
            t = multi_table[m]
            for j in range(np.int64(overflow[at])):
                cand[nc] = np.int64(overflow[at + 1 + j])
                cand_table[nc] = t
                nc += 1
        for c in range(min(ahead, nc)):
            prefetch(hashes, cand[c] * 4)
        found = 0
        for c in range(nc):
            if c + ahead < nc:
                prefetch(hashes, cand[c + ahead] * 4)
            row = cand[c]
            d = _distance(hashes, row, q0, q1, q2, q3)
            if d > radius:
                continue
            t = cand_table[c]
            earlier = False
            for u in range(t):
                ku = _key(hashes, row, table_meta[u, 0], table_meta[u, 1])
                if popcount64(ku ^ qkeys[u]) <= sub_radius:
                    earlier = True
                    break
            if earlier or _is_dead(dead, row):
                continue
            if found < cap:
                out_ids[qi, found] = ids[row]
                out_dist[qi, found] = d
            found += 1
        found = _scan(
            qi, queries, delta_hashes, delta_ids, dead[:0], radius, out_ids, out_dist, found
        )
        _finish(qi, out_ids, out_dist, found, counts)


@numba.njit(nogil=True, cache=True)  # type: ignore[misc,unused-ignore]
def search_brute(
    queries: Any,
    hashes: Any,
    ids: Any,
    dead: Any,
    radius: int,
    delta_hashes: Any,
    delta_ids: Any,
    out_ids: Any,
    out_dist: Any,
    counts: Any,
) -> None:
    """Exact range search by scanning every main and delta row; output as :func:`search_mih`."""
    for qi in range(queries.shape[0]):
        found = _scan(qi, queries, hashes, ids, dead, radius, out_ids, out_dist, 0)
        found = _scan(
            qi, queries, delta_hashes, delta_ids, dead[:0], radius, out_ids, out_dist, found
        )
        _finish(qi, out_ids, out_dist, found, counts)
