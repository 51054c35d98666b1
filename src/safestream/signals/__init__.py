"""Signal types: how content becomes comparable signals (hashes)."""

from safestream.signals import crypto, pdq
from safestream.signals.base import SignalType, get_signal_type, register, signal_types

__all__ = ["SignalType", "crypto", "get_signal_type", "pdq", "register", "signal_types"]
