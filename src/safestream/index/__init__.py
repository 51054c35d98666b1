"""Indexes: exact Hamming-radius search for PDQ and exact-value lookup for digests."""

from safestream.index.exact import ExactIndex
from safestream.index.pdq_index import PDQIndex

__all__ = ["ExactIndex", "PDQIndex"]
