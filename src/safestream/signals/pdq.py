"""PDQ, Meta's 256-bit perceptual image hash, compared by Hamming distance."""

from __future__ import annotations

from typing import ClassVar

from safestream.signals.base import SignalType, register

#: Hotlines and HMA treat PDQ hashes of quality below this as unreliable.
DEFAULT_MIN_QUALITY = 50
#: Inclusive Hamming distance threshold recommended by Meta.
DEFAULT_PDQ_THRESHOLD = 31


@register
class PDQSignal(SignalType):
    """PDQ hash: 64 hex characters, Hamming distance, threshold 31."""

    name: ClassVar[str] = "pdq"
    distance_metric: ClassVar[str] = "hamming"
    hash_length_bits: ClassVar[int] = 256
    default_threshold: ClassVar[int] = DEFAULT_PDQ_THRESHOLD

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """Hamming distance between two canonical PDQ hex strings."""
        return (int(a, 16) ^ int(b, 16)).bit_count()
