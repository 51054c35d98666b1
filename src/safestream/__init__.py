"""safestream: detect known child-abuse material by hash, disrupt it, report it.

The stable public API::

    safestream.hash_file(path, *, mode="exact") -> ImageHashes
    safestream.hash_bytes(data, *, mode="exact") -> ImageHashes
    safestream.PDQIndex()

Names are imported lazily so that ``import safestream.errors`` (and the CLI's
start-up) does not pay for numba and the image decoders.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safestream.errors import SafestreamError
    from safestream.index import ExactIndex, PDQIndex
    from safestream.signals.hashing import ImageHashes, hash_bytes, hash_file

_LAZY = {
    "ExactIndex": "safestream.index",
    "PDQIndex": "safestream.index",
    "ImageHashes": "safestream.signals.hashing",
    "hash_bytes": "safestream.signals.hashing",
    "hash_file": "safestream.signals.hashing",
    "SafestreamError": "safestream.errors",
}

__all__ = [
    "ExactIndex",
    "ImageHashes",
    "PDQIndex",
    "SafestreamError",
    "hash_bytes",
    "hash_file",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'safestream' has no attribute {name!r}")
    return getattr(import_module(module), name)
