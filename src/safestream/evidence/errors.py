"""Errors of evidence custody: integrity failures and missing keys."""

from __future__ import annotations

from safestream.errors import ConfigError, SafestreamError


class EvidenceIntegrityError(SafestreamError):
    """Stored evidence failed authentication or its SHA-256 check; nothing is returned.

    Raised for altered ciphertext, a wrong key, a missing or swapped file. It is
    never a caller's mistake: investigate the storage and restore from backup. The
    API answers 409 ``evidence_integrity`` and the failed read is audited
    (``evidence.integrity_failure``).
    """


class EvidenceKeyError(ConfigError):
    """The key an object was encrypted with is not configured."""


class AuditChainError(SafestreamError):
    """The audit chain failed verification."""


class EvidenceStorageError(SafestreamError):
    """The evidence storage (a bucket, a disk) could not be reached or failed; try again."""


class EvidenceObjectMissing(SafestreamError):
    """A backend has no object under this key (the store turns it into an integrity error)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no stored object under key {key!r}")
        self.key = key
