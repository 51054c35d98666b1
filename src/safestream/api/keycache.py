"""A per-process cache of verified API keys, kept honest by the refresh loop.

Verifying a key in the database on every request cost a third of a lookup's
time. Valid keys are cached by digest; the refresh loop (every
``refresh_interval_s``) evicts keys revoked by any process, and a revocation
through this process evicts at once. Entries also expire after ``ttl_s``.
Unknown keys are never cached, so a new key works at once everywhere.

Logins are audited here: a key's first successful use by this process in a UTC
day appends ``api_key.login`` to the audit chain (once a day per key and
process, not per request: the chain records who had access, without one event
per call).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, date, datetime

from safestream.auth import key_digest
from safestream.store.service import ApiKey, KeyRepository

log = logging.getLogger(__name__)


class KeyCache:
    """Cached :meth:`KeyRepository.verify`."""

    def __init__(self, keys: KeyRepository, ttl_s: float = 60.0) -> None:
        self.keys = keys
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()
        #: Key id -> the UTC day of its last audited login by this process.
        self._logins: dict[int, date] = {}

    def cached(self, key: str) -> ApiKey | None:
        """The cached live key for ``key``, or None (not cached, or expired)."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_digest(key))
        return hit[0] if hit is not None and hit[1] > now else None

    def verify(self, key: str) -> ApiKey | None:
        """The live key for ``key``, or None."""
        digest = key_digest(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        found = self.keys.verify(key)
        if found is not None:
            with self._lock:
                self._cache[digest] = (found, now + self.ttl_s)
            self._audit_login(found)
        return found

    def _audit_login(self, key: ApiKey) -> None:
        today = datetime.now(UTC).date()
        with self._lock:
            if self._logins.get(key.id) == today:
                return
            self._logins[key.id] = today
        try:
            self.keys.record_login(key)
        except Exception:  # the audit write failing must not lock the key out
            log.exception("could not audit the login of API key %s", key.id)
            with self._lock:
                self._logins.pop(key.id, None)

    def evict(self, key_ids: set[int]) -> None:
        """Forget cached keys with these ids."""
        if not key_ids:
            return
        with self._lock:
            self._cache = {d: v for d, v in self._cache.items() if v[0].id not in key_ids}

    def refresh(self) -> None:
        """Evict keys revoked since they were cached (called by the refresh loop)."""
        with self._lock:
            cached = {v[0].id for v in self._cache.values()}
        if cached:
            self.evict(self.keys.revoked_among(cached))
