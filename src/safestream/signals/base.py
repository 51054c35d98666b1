"""The ``SignalType`` plug-in interface and its registry.

A signal type knows how to validate, normalise, format and compare one kind
of signal value (a hash).  Computing a signal from content is a capability
added by mixins (:class:`BytesHasher`, :class:`ImageHasher`), in the manner of
python-threatexchange.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from safestream.errors import SignalValueError


class SignalType(ABC):
    """One kind of signal: its name, value format, distance and default threshold."""

    #: Stable name used in banks, hash lists and the API (``"pdq"``, ``"md5"``...).
    name: ClassVar[str]
    #: ``"hamming"`` for perceptual hashes, ``"exact"`` for cryptographic ones.
    distance_metric: ClassVar[str]
    #: Length of the value in bits.
    hash_length_bits: ClassVar[int]
    #: Default match threshold (inclusive): distance <= threshold is a match.
    default_threshold: ClassVar[int]

    @classmethod
    def hex_length(cls) -> int:
        """Number of hex characters of a value."""
        return cls.hash_length_bits // 4

    @classmethod
    def parse(cls, value: str) -> str:
        """Validate ``value`` and return its canonical form (lower-case hex).

        Raises :class:`SignalValueError` with a message naming the problem.
        """
        text = value.strip().lower()
        expected = cls.hex_length()
        if len(text) != expected:
            raise SignalValueError(
                f"{cls.name} value must be {expected} hex characters, got {len(text)}"
            )
        try:
            bytes.fromhex(text)
        except ValueError:
            raise SignalValueError(f"{cls.name} value is not hexadecimal: {text[:80]!r}") from None
        return text

    @classmethod
    @abstractmethod
    def distance(cls, a: str, b: str) -> int:
        """Distance between two canonical values (0 means identical)."""

    @classmethod
    def matches(cls, a: str, b: str, threshold: int | None = None) -> bool:
        """True when ``distance(a, b) <= threshold`` (default threshold if None)."""
        limit = cls.default_threshold if threshold is None else threshold
        return cls.distance(a, b) <= limit


class ExactSignalType(SignalType):
    """A signal compared by equality only (cryptographic digests)."""

    distance_metric: ClassVar[str] = "exact"
    default_threshold: ClassVar[int] = 0

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """0 when equal, else 1."""
        return 0 if a == b else 1


class BytesHasher(ABC):
    """Capability: compute the signal from the raw bytes of a file."""

    @classmethod
    @abstractmethod
    def hash_bytes(cls, data: bytes) -> str:
        """Return the canonical value for ``data``."""


def hex_to_bytes_array(values: list[str], n_bytes: int) -> npt.NDArray[np.uint8]:
    """Pack canonical hex values into an ``(n, n_bytes)`` uint8 array."""
    out = np.empty((len(values), n_bytes), dtype=np.uint8)
    for row, value in enumerate(values):
        out[row] = np.frombuffer(bytes.fromhex(value), dtype=np.uint8)
    return out


_REGISTRY: dict[str, type[SignalType]] = {}


def register(signal_type: type[SignalType]) -> type[SignalType]:
    """Register a signal type under its name (usable as a class decorator)."""
    _REGISTRY[signal_type.name] = signal_type
    return signal_type


def get_signal_type(name: str) -> type[SignalType]:
    """Return the registered signal type called ``name`` (case-insensitive)."""
    key = name.strip().lower()
    # Aliases used by hotlines and python-threatexchange.
    key = {"sha-1": "sha1", "sha-256": "sha256", "pdq_hash": "pdq", "md5_hash": "md5"}.get(key, key)
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise SignalValueError(f"unknown signal type {name!r}; known types: {known}") from None


def signal_types() -> dict[str, type[SignalType]]:
    """All registered signal types by name."""
    return dict(_REGISTRY)
