"""Exact-match index for cryptographic hashes (MD5, SHA-1, SHA-256).

Values are digests, given as hex strings (any case; stored canonical lower-case)
or raw bytes. Several ids may share one value (the same file listed by two
banks); an id holds one value, and adding an id again replaces it (upsert).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from safestream.errors import InputError, SignalValueError
from safestream.index.storage import IndexFileError, read_arrays, write_arrays

__all__ = ["DIGEST_SIZES", "ExactIndex", "normalize_digest"]

DIGEST_SIZES = {16: "md5", 20: "sha1", 32: "sha256"}
"""Accepted digest lengths in bytes, with the algorithm each length means."""

FORMAT_NAME = "safestream-exact-index"
FORMAT_VERSION = 1
_MAX_DIGEST = max(DIGEST_SIZES)
_HEX = frozenset("0123456789abcdef")


def normalize_digest(value: str | bytes | bytearray | memoryview) -> bytes:
    """Return the raw bytes of an MD5/SHA-1/SHA-256 digest given as hex or bytes.

    Raises :class:`SignalValueError` for anything else (wrong length, not hex).
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if len(text) // 2 not in DIGEST_SIZES or len(text) % 2 or not _HEX.issuperset(text):
            raise SignalValueError(
                "a cryptographic hash must be 32, 40 or 64 hex characters "
                f"(md5, sha1, sha256), got {len(text)} characters"
                + ("" if _HEX.issuperset(text) else " with non-hex characters")
            )
        return bytes.fromhex(text)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) not in DIGEST_SIZES:
            raise SignalValueError(
                f"a cryptographic hash must be 16, 20 or 32 bytes (md5, sha1, sha256), got {len(raw)}"
            )
        return raw
    raise SignalValueError(
        f"a cryptographic hash must be hex str or bytes, got {type(value).__name__}"
    )


def _as_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"an id must be an int, got {value!r}")
    number = int(value)
    if not -(1 << 63) <= number < (1 << 63):
        raise InputError(f"an id must fit in int64, got {number}")
    return number


class ExactIndex:
    """Exact lookup of cryptographic hash values to the ids that hold them (thread-safe)."""

    def __init__(self) -> None:
        """Create an empty index."""
        self._lock = threading.Lock()
        self._by_id: dict[int, bytes] = {}
        self._by_value: dict[bytes, set[int]] = {}

    def __len__(self) -> int:
        """Return the number of ids held."""
        return len(self._by_id)

    def __contains__(self, key: object) -> bool:
        """Return whether ``key`` is an id held by the index."""
        if isinstance(key, bool) or not isinstance(key, int | np.integer):
            return False
        return int(key) in self._by_id

    def __repr__(self) -> str:
        """Summarise the size (never the values)."""
        return f"ExactIndex(len={len(self)})"

    def add(
        self,
        ids: Sequence[int] | Iterable[int],
        values: Sequence[str | bytes] | Iterable[str | bytes],
    ) -> None:
        """Add ``values[i]`` under ``ids[i]``; an id already present gets the new value.

        The whole call is validated first: on bad input nothing is changed.
        """
        id_list = [_as_id(i) for i in ids]
        value_list = [normalize_digest(v) for v in values]
        if len(id_list) != len(value_list):
            raise InputError(
                f"ids and values differ in length: {len(id_list)} ids, {len(value_list)} values"
            )
        with self._lock:
            for key, value in zip(id_list, value_list, strict=True):
                self._discard(key)
                self._by_id[key] = value
                self._by_value.setdefault(value, set()).add(key)

    def _discard(self, key: int) -> bool:
        old = self._by_id.pop(key, None)
        if old is None:
            return False
        holders = self._by_value[old]
        holders.discard(key)
        if not holders:
            del self._by_value[old]
        return True

    def remove(self, ids: Sequence[int] | Iterable[int]) -> int:
        """Remove the given ids; unknown ids are ignored. Returns how many were removed."""
        id_list = [_as_id(i) for i in ids]
        with self._lock:
            return sum(self._discard(key) for key in set(id_list))

    def search(self, value: str | bytes) -> list[int]:
        """Return the ids holding exactly ``value``, sorted ascending (empty if none)."""
        raw = normalize_digest(value)
        with self._lock:
            return sorted(self._by_value.get(raw, ()))

    def get(self, key: int) -> str | None:
        """Return the lower-case hex value held by id ``key``, or None."""
        with self._lock:
            raw = self._by_id.get(_as_id(key))
        return None if raw is None else raw.hex()

    def ids(self) -> list[int]:
        """Return every id, sorted ascending."""
        with self._lock:
            return sorted(self._by_id)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Save to ``directory`` as ids.npy, values.npy (zero-padded), lengths.npy and a manifest."""
        with self._lock:
            items = sorted(self._by_id.items())
        ids = np.array([k for k, _ in items], dtype="<i8")
        values = np.zeros((len(items), _MAX_DIGEST), dtype=np.uint8)
        lengths = np.zeros(len(items), dtype=np.uint8)
        for row, (_, raw) in enumerate(items):
            values[row, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
            lengths[row] = len(raw)
        return write_arrays(
            directory,
            format_name=FORMAT_NAME,
            version=FORMAT_VERSION,
            arrays={"ids": ids, "values": values, "lengths": lengths},
            extra={"count": len(items)},
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ExactIndex:
        """Load an index saved by :meth:`save`; raises ``IndexFileError`` if it is damaged."""
        manifest, arrays = read_arrays(
            directory,
            format_name=FORMAT_NAME,
            versions=frozenset({FORMAT_VERSION}),
            expected={"ids": ("<i8", 1), "values": ("|u1", 2), "lengths": ("|u1", 1)},
        )
        ids, values, lengths = arrays["ids"], arrays["values"], arrays["lengths"]
        n = ids.shape[0]
        where = Path(directory)
        if values.shape != (n, _MAX_DIGEST) or lengths.shape != (n,):
            raise IndexFileError(f"{where}: array shapes disagree with {n} ids")
        if manifest.get("count") != n or len(set(ids.tolist())) != n:
            raise IndexFileError(f"{where}: ids are duplicated or disagree with the manifest count")
        if not set(lengths.tolist()) <= set(DIGEST_SIZES):
            raise IndexFileError(f"{where}: invalid digest length in lengths.npy")
        index = cls()
        index.add(
            ids.tolist(),
            [values[row, : int(length)].tobytes() for row, length in enumerate(lengths)],
        )
        return index
