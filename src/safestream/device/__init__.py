"""On-device protection: private block-list check (OPRF over ristretto255) and interventions.

Needs the ``device`` extra (``pip install 'safestream[device]'``): PyNaCl for
Ed25519 and rbcl for ristretto255 (both bundle libsodium).  See ``docs/device.md``.
"""

from __future__ import annotations

from safestream.device.client import (
    Decision,
    DeviceGuard,
    DeviceUnavailableError,
    FileFilterSource,
    HttpEvaluator,
    HttpFilterSource,
    LocalEvaluator,
    obscured,
)
from safestream.device.filter import (
    FilterHeader,
    FilterVerificationError,
    SignedFilter,
    VerifiedFilter,
    build_filter,
    verify_filter,
)
from safestream.device.server import DeviceServer, RateLimitedError, TokenBucket

__all__ = [
    "Decision",
    "DeviceGuard",
    "DeviceServer",
    "DeviceUnavailableError",
    "FileFilterSource",
    "FilterHeader",
    "FilterVerificationError",
    "HttpEvaluator",
    "HttpFilterSource",
    "LocalEvaluator",
    "RateLimitedError",
    "SignedFilter",
    "TokenBucket",
    "VerifiedFilter",
    "build_filter",
    "obscured",
    "verify_filter",
]
