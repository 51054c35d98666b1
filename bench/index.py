"""Benchmark the exact PDQ index against faiss, in one run, on random hashes.

For each size: random 256-bit hashes with planted near-duplicates at every distance
0..31 (so that recall means something), then in the same process:

* ours: ``safestream.index.pdq_index.PDQIndex``;
* faiss ``IndexBinaryMultiHash(256, 16, 16)`` with ``nflip = 1`` (Meta's HMA default);
* faiss ``IndexBinaryFlat`` (brute force, the ground truth).

It prints build time, add latency into a built index, lookups/s (one query per
call, and one batch), p50/p99 latency of one-query calls, recall and extras
against brute force, resident memory, and the ratios ours/faiss. Figures are
medians over ``--repeat`` rounds, the three indexes timed in turn in each round
so that noise from other processes hits them alike.

Run: ``.venv/bin/python bench/index.py --sizes 1000000 10000000``
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

RADIUS = 31
PAGE = os.sysconf("SC_PAGE_SIZE")
Pairs = set[tuple[int, int]]


def rss_bytes() -> int:
    """Resident set size of this process (from /proc, no psutil needed)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def flip_bits(row: npt.NDArray[np.uint8], n_bits: int, rng: np.random.Generator) -> None:
    """Flip ``n_bits`` distinct random bits of a 32-byte row in place."""
    for bit in rng.choice(256, size=n_bits, replace=False):
        row[bit // 8] ^= np.uint8(1 << (bit % 8))


def make_data(
    n: int, n_queries: int, seed: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Random hashes and queries; for each query, one stored hash at distance ``i % 32``."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(n_queries, 32), dtype=np.uint8)
    targets = rng.choice(n, size=n_queries, replace=False)
    for i, row in enumerate(targets.tolist()):
        planted = queries[i].copy()
        flip_bits(planted, i % 32, rng)
        hashes[row] = planted
    return hashes, queries


@dataclass
class Timings:
    """Per-round measurements of one index."""

    single_qps: list[float] = field(default_factory=list)
    batch_qps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


def time_single(
    search_one: Callable[[Any], object], queries: npt.NDArray[np.uint8]
) -> tuple[float, float, float]:
    """One query per call: (queries/s, p50 ms, p99 ms)."""
    lat = np.empty(queries.shape[0])
    start = time.perf_counter()
    for i in range(queries.shape[0]):
        t0 = time.perf_counter()
        search_one(queries[i])
        lat[i] = time.perf_counter() - t0
    total = time.perf_counter() - start
    return (
        queries.shape[0] / total,
        float(np.percentile(lat, 50) * 1e3),
        float(np.percentile(lat, 99) * 1e3),
    )


def time_batch(search_all: Callable[[Any], object], queries: npt.NDArray[np.uint8]) -> float:
    """All queries in one call: queries/s."""
    start = time.perf_counter()
    search_all(queries)
    return float(queries.shape[0] / (time.perf_counter() - start))


def faiss_pairs(index: Any, queries: npt.NDArray[np.uint8]) -> list[Pairs]:
    """faiss range search at distance <= RADIUS (faiss returns < r, hence r + 1)."""
    lims, dist, labels = index.range_search(queries, RADIUS + 1)
    return [
        set(
            zip(
                labels[lims[i] : lims[i + 1]].tolist(),
                dist[lims[i] : lims[i + 1]].tolist(),
                strict=True,
            )
        )
        for i in range(queries.shape[0])
    ]


def compare(found: list[Pairs], truth: list[Pairs]) -> tuple[float, int]:
    """(recall, extras) of ``found`` against ``truth``."""
    expected = sum(len(t) for t in truth)
    hit = sum(len(f & t) for f, t in zip(found, truth, strict=True))
    extra = sum(len(f - t) for f, t in zip(found, truth, strict=True))
    return (hit / expected if expected else 1.0), extra


def med(values: list[float]) -> float:
    """Median of a list."""
    return statistics.median(values)


def bench_size(n: int, args: argparse.Namespace) -> None:
    """Run every measurement for one index size and print a report."""
    import faiss

    from safestream.index.pdq_index import PDQIndex

    print(f"\n=== {n:,} hashes, radius {RADIUS} ===", flush=True)
    t0 = time.perf_counter()
    hashes, queries = make_data(n, args.queries, args.seed)
    base_queries = queries[: args.baseline_queries]
    ids = np.arange(n, dtype=np.int64)
    print(
        f"data: {time.perf_counter() - t0:.1f} s; {args.queries} queries (ours), "
        f"{base_queries.shape[0]} for faiss",
        flush=True,
    )

    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    ours = PDQIndex()
    ours.add(ids, hashes)
    ours_build = time.perf_counter() - t0
    gc.collect()
    ours_mem = rss_bytes() - rss0
    print(
        f"ours built in {ours_build:.1f} s, RSS +{ours_mem / 2**30:.2f} GiB "
        f"(arrays {ours.nbytes / 2**30:.2f} GiB)",
        flush=True,
    )

    rss0 = rss_bytes()
    t0 = time.perf_counter()
    mih = faiss.IndexBinaryMultiHash(256, 16, 16)
    mih.nflip = 1
    mih.add(hashes)
    mih_build = time.perf_counter() - t0
    gc.collect()
    mih_mem = rss_bytes() - rss0
    print(f"faiss MIH built in {mih_build:.1f} s, RSS +{mih_mem / 2**30:.2f} GiB", flush=True)

    rss0 = rss_bytes()
    t0 = time.perf_counter()
    flat = faiss.IndexBinaryFlat(256)
    flat.add(hashes)
    flat_build = time.perf_counter() - t0
    flat_mem = rss_bytes() - rss0
    print(f"faiss flat built in {flat_build:.1f} s, RSS +{flat_mem / 2**30:.2f} GiB", flush=True)

    # Correctness first: every query against brute force.
    t0 = time.perf_counter()
    truth = faiss_pairs(flat, queries)
    print(
        f"ground truth (flat, {queries.shape[0]} queries): {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    ours_found = [set(r) for r in ours.search(queries, RADIUS)]
    ours_recall, ours_extra = compare(ours_found, truth)
    mih_recall, mih_extra = compare(faiss_pairs(mih, base_queries), truth[: base_queries.shape[0]])
    planted_ok = all(any(d == i % 32 for _, d in truth[i]) for i in range(queries.shape[0]))
    n_matches = sum(len(t) for t in truth)

    def ours_search(q: Any) -> object:
        return ours.search(q, RADIUS)

    def ours_search_at(radius: int) -> Callable[[Any], object]:
        return lambda q: ours.search(q, radius)

    def faiss_one(index: Any) -> Callable[[Any], object]:
        def run(q: Any) -> object:
            # One query gains nothing from OpenMP, and on a busy 2-core box its
            # barrier waits cost milliseconds: give faiss its best case.
            faiss.omp_set_num_threads(1)
            try:
                return index.range_search(q[None, :], RADIUS + 1)
            finally:
                faiss.omp_set_num_threads(os.cpu_count() or 1)

        return run

    def faiss_many(index: Any) -> Callable[[Any], object]:
        return lambda q: index.range_search(q, RADIUS + 1)

    timings = {"ours": Timings(), "mih": Timings(), "flat": Timings()}
    contenders: list[tuple[str, Callable[[Any], object], Callable[[Any], object], Any]] = [
        ("ours", ours_search, ours_search, queries),
        ("mih", faiss_one(mih), faiss_many(mih), base_queries),
        ("flat", faiss_one(flat), faiss_many(flat), base_queries),
    ]
    for round_no in range(args.repeat):
        for name, one, many, qs in contenders:
            tm = timings[name]
            qps, p50, p99 = time_single(one, qs)
            tm.single_qps.append(qps)
            tm.p50_ms.append(p50)
            tm.p99_ms.append(p99)
            tm.batch_qps.append(time_batch(many, qs))
        print(
            f"round {round_no + 1}/{args.repeat}: ours {timings['ours'].batch_qps[-1]:,.0f} q/s "
            f"batch, MIH {timings['mih'].batch_qps[-1]:,.1f}, flat {timings['flat'].batch_qps[-1]:,.1f}",
            flush=True,
        )

    # Other radii: ours (batch) against brute force on the baseline queries.
    other_radii: list[tuple[int, float, float, int, float]] = []
    for radius in args.radii:
        lims, dist, labels = flat.range_search(base_queries, radius + 1)
        truth_r = [
            set(
                zip(
                    labels[lims[i] : lims[i + 1]].tolist(),
                    dist[lims[i] : lims[i + 1]].tolist(),
                    strict=True,
                )
            )
            for i in range(base_queries.shape[0])
        ]
        t0 = time.perf_counter()
        got = ours.search(base_queries, radius)
        qps = base_queries.shape[0] / (time.perf_counter() - t0)
        # A few hundred fast queries take milliseconds, which one lost time slice
        # on a busy machine would distort: time ~2 s worth of queries instead.
        more = min(queries.shape[0], int(qps * 2))
        if more > base_queries.shape[0]:
            qps = time_batch(ours_search_at(radius), queries[:more])
        t0 = time.perf_counter()
        flat.range_search(base_queries, radius + 1)
        flat_qps = base_queries.shape[0] / (time.perf_counter() - t0)
        rec, ext = compare([set(g) for g in got], truth_r)
        other_radii.append((radius, qps, rec, ext, flat_qps))

    # Changes into the built index.
    rng = np.random.default_rng(args.seed + 1)
    add_ms: dict[int, list[float]] = {1: [], 100: []}
    next_id = n
    for size in add_ms:
        for _ in range(20):
            batch = rng.integers(0, 256, size=(size, 32), dtype=np.uint8)
            t0 = time.perf_counter()
            ours.add(np.arange(next_id, next_id + size), batch)
            add_ms[size].append((time.perf_counter() - t0) * 1e3)
            next_id += size
    mih_add_ms = []
    for _ in range(5):
        batch = rng.integers(0, 256, size=(100, 32), dtype=np.uint8)
        t0 = time.perf_counter()
        mih.add(batch)
        mih_add_ms.append((time.perf_counter() - t0) * 1e3)
    fresh = rng.integers(0, 256, size=(1, 32), dtype=np.uint8)
    ours.add([next_id], fresh)
    visible = ours.search(fresh[0], 0) == [[(next_id, 0)]]
    remove_ms = []
    for k in range(20):
        t0 = time.perf_counter()
        ours.remove([n + k])
        remove_ms.append((time.perf_counter() - t0) * 1e3)
    delta_rows = len(ours) - n
    rng_q = queries[: min(500, queries.shape[0])]
    delta_qps = time_batch(ours_search, rng_q)
    t0 = time.perf_counter()
    ours.merge()
    merge_s = time.perf_counter() - t0

    o, m, f = timings["ours"], timings["mih"], timings["flat"]
    print(
        f"\nload average now {os.getloadavg()[0]:.1f} (2.0 = both cores busy with this run; "
        "more means other processes took CPU from it)"
    )
    print(
        f"results at {n:,} ({args.repeat} rounds, medians; {n_matches} true matches, "
        f"planted at every distance 0..31 present: {planted_ok})"
    )
    header = f"{'':34}{'ours':>12}{'faiss MIH':>12}{'faiss flat':>12}"
    print(header)
    rows = [
        ("build (s)", ours_build, mih_build, flat_build, "{:.1f}"),
        (
            "resident memory, RSS delta (GiB)",
            ours_mem / 2**30,
            mih_mem / 2**30,
            flat_mem / 2**30,
            "{:.2f}",
        ),
        (
            "lookups/s, one query per call",
            med(o.single_qps),
            med(m.single_qps),
            med(f.single_qps),
            "{:,.0f}",
        ),
        ("lookups/s, batch", med(o.batch_qps), med(m.batch_qps), med(f.batch_qps), "{:,.0f}"),
        ("p50 latency, one query (ms)", med(o.p50_ms), med(m.p50_ms), med(f.p50_ms), "{:.3f}"),
        ("p99 latency, one query (ms)", med(o.p99_ms), med(m.p99_ms), med(f.p99_ms), "{:.3f}"),
    ]
    for label, a, b, c, fmt in rows:
        print(f"{label:34}{fmt.format(a):>12}{fmt.format(b):>12}{fmt.format(c):>12}")
    print(f"{'recall vs brute force':34}{ours_recall:>12.2%}{mih_recall:>12.2%}{'(truth)':>12}")
    print(f"{'extras vs brute force':34}{ours_extra:>12}{mih_extra:>12}{'':>12}")
    print(
        f"ratios: ours/faiss-MIH single {med(o.single_qps) / med(m.single_qps):.0f}x, batch {med(o.batch_qps) / med(m.batch_qps):.0f}x; ours/flat single {med(o.single_qps) / med(f.single_qps):.0f}x, batch {med(o.batch_qps) / med(f.batch_qps):.0f}x"
    )
    for radius, qps, rec, ext, flat_qps in other_radii:
        print(
            f"radius {radius:3}: ours batch {qps:,.0f} q/s (flat {flat_qps:,.0f}), "
            f"recall {rec:.2%}, extras {ext}"
        )
    print(
        f"add into built index: 1 hash {med(add_ms[1]):.3f} ms, 100 hashes {med(add_ms[100]):.3f} ms "
        f"(faiss MIH 100: {med(mih_add_ms):.3f} ms); new hash matchable at once: {visible}"
    )
    print(
        f"remove 1 id {med(remove_ms):.3f} ms; batch search with a {delta_rows}-row delta "
        f"{delta_qps:,.0f} q/s; merge of that delta {merge_s:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--queries", type=int, default=2000, help="queries for our index")
    parser.add_argument(
        "--baseline-queries",
        type=int,
        default=200,
        help="queries for faiss (slow at 10M: ~50 ms each for MIH)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--radii",
        type=int,
        nargs="*",
        default=[0, 15, 32, 40, 64],
        help="extra radii, checked once",
    )
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args(argv)
    args.baseline_queries = min(args.baseline_queries, args.queries)

    from safestream.index.pdq_index import warm_up

    print(f"first use (numba compile, or load from its cache): {warm_up():.1f} s")
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, cores {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for n in args.sizes:
        bench_size(n, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
