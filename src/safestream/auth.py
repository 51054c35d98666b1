"""API keys and roles.

A key is ``ss_<prefix>_<secret>``: 8 random hex characters (shown in listings
to tell keys apart) and 32 random bytes (URL-safe base64). Only the key's
SHA-256 is stored: keys are random and long, so a fast hash is enough (no
dictionary to attack), and it lets every request be checked in microseconds.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum


class Role(StrEnum):
    """The one role of an API key. ``admin`` may do everything."""

    ADMIN = "admin"
    INTEGRATOR = "integrator"  # check, lookup, hash
    CURATOR = "curator"  # banks
    REVIEWER = "reviewer"  # review queue (cases issue)
    LE_LIAISON = "le_liaison"  # reports, law-enforcement requests
    AUDITOR = "auditor"  # audit trail, read only


KEY_PREFIX = "ss_"


def new_key() -> tuple[str, str]:
    """A fresh random key and its public prefix."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
