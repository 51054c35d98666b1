"""Fixtures for the index tests: random PDQ-like hashes and a brute-force reference.

All data is random bytes; no image, real or synthetic, is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
import pytest

Hashes = npt.NDArray[np.uint8]
Reference = Callable[[Mapping[int, bytes], Hashes, int], list[list[tuple[int, int]]]]


def brute_force(
    entries: Mapping[int, bytes], queries: Hashes, radius: int
) -> list[list[tuple[int, int]]]:
    """The plain reference: every (id, distance <= radius), sorted by (distance, id)."""
    queries = queries.reshape(-1, 32)
    if not entries:
        return [[] for _ in range(queries.shape[0])]
    ids = np.array(list(entries), dtype=np.int64)
    table = np.frombuffer(b"".join(entries.values()), dtype=np.uint8).reshape(-1, 32)
    out = []
    for q in queries:
        dist = np.unpackbits(table ^ q, axis=1).sum(axis=1)
        hit = np.flatnonzero(dist <= radius)
        out.append(sorted(((int(ids[i]), int(dist[i])) for i in hit), key=lambda p: (p[1], p[0])))
    return out


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so that a failure reproduces."""
    return np.random.default_rng(20261129)


@pytest.fixture
def reference() -> Reference:
    """The brute-force reference search."""
    return brute_force
