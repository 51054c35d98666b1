"""The encrypted evidence store over a storage backend (filesystem or S3).

Each object is stored by the backend (:mod:`safestream.evidence.backends`)
under ``<object id>.<key id>.ssev``, holding ``MAGIC || nonce || AES-256-GCM
ciphertext+tag`` of the content: only ciphertext ever leaves this process.
The database row holds the key id, the SHA-256 of the plaintext (checked on
every read), the size, the media type and the metadata, itself sealed with the
same key. Every change writes an audit event in the same transaction as the row.

Atomicity of :meth:`EvidenceStore.preserve`: the ciphertext object is written
first (atomically: a fsynced file renamed into place, or one S3 PUT); then the
row, its hold and its audit event are inserted in one database transaction. A
failure before the commit deletes the object; a crash (no chance to clean up)
leaves at most an unreferenced object, which readers never see (no row points
at it) and :meth:`sweep_orphans` (run by the purge job) deletes. So an object
is either whole (row and object) or absent. :meth:`check_storage` reports both
kinds of disagreement (orphan objects, rows whose object is gone).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from safestream.errors import ConflictError, InputError, NotFoundError
from safestream.evidence.backends import (
    ENV_DIR,
    EvidenceBackend,
    FilesystemBackend,
    backend_from_env,
    evidence_dir,
)
from safestream.evidence.crypto import KeyRing, aad, open_sealed, seal
from safestream.evidence.errors import EvidenceIntegrityError, EvidenceObjectMissing
from safestream.store import evidence as sql
from safestream.store.audit import AuditRepository
from safestream.store.db import Store
from safestream.store.evidence import EvidenceRecord, Hold
from safestream.store.jobs import write_transaction
from safestream.store.models import utcnow

MAGIC = b"SSEV1\n"
#: Names this store gives objects (and the filesystem backend's temporary files):
#: only these are ever swept as orphans, so a bucket shared with other data is safe.
_OUR_KEY = re.compile(r"^(?:[0-9a-f-]{36}\.[A-Za-z0-9_.-]{1,64}\.ssev|\.tmp-[0-9a-f]{32})$")
log = logging.getLogger(__name__)
#: Hold bases and their default lengths.
BASIS_REPORT = "report"
BASIS_PRESERVATION = "preservation_request"
BASIS_OTHER = "other"
DEFAULT_HOLD: dict[str, timedelta] = {
    # REPORT Act of 2024 (US): providers preserve reported material for one year.
    BASIS_REPORT: timedelta(days=365),
    # 18 U.S.C. 2703(f): 90 days, renewable for another 90 on request.
    BASIS_PRESERVATION: timedelta(days=90),
    BASIS_OTHER: timedelta(days=90),
}
MAX_HOLD = timedelta(days=5 * 365)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class EvidenceObject:
    """A decrypted, verified evidence object."""

    id: str
    content: bytes
    sha256: str
    media_type: str
    metadata: dict[str, Any]
    key_id: str


@dataclass(frozen=True)
class StorageCheck:
    """How the rows and the stored objects agree (see :meth:`EvidenceStore.check_storage`)."""

    #: Active rows checked.
    rows: int
    #: Stored objects no row points at (left by a crash), with their age in seconds.
    orphans: dict[str, float] = field(default_factory=dict)
    #: Active rows whose object is missing from storage.
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every active row has its object (orphans are harmless until swept)."""
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "ok": self.ok,
            "rows": self.rows,
            "orphans": sorted(self.orphans),
            "missing": self.missing,
        }


def record_dict(record: EvidenceRecord, holds: list[Hold] | None = None) -> dict[str, Any]:
    """JSON-ready view of an object's row (no content, no metadata)."""
    out: dict[str, Any] = {
        "id": record.id,
        "key_id": record.key_id,
        "sha256": record.sha256,
        "size_bytes": record.size_bytes,
        "media_type": record.media_type,
        "account_id": record.account_id,
        "source": record.source,
        "status": record.status,
        "created_at": record.created_at.isoformat(),
        "purged_at": record.purged_at.isoformat() if record.purged_at else None,
    }
    if holds is not None:
        out["holds"] = [h.to_dict() for h in holds]
    return out


class EvidenceStore:
    """Preserve, read, hold, purge and re-key evidence objects."""

    def __init__(
        self,
        store: Store,
        backend: EvidenceBackend | Path,
        keys: KeyRing | None,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.backend: EvidenceBackend = (
            FilesystemBackend(backend) if isinstance(backend, Path) else backend
        )
        self._keys = keys
        self.clock = clock
        self.audit = AuditRepository(store)

    @classmethod
    def from_env(
        cls, store: Store, environ: Mapping[str, str] | None = None, *, need_keys: bool = True
    ) -> EvidenceStore:
        """The store on the configured backend (``SAFESTREAM_EVIDENCE_BACKEND``) and keys."""
        keys = KeyRing.from_env(environ) if need_keys else None
        return cls(store, backend_from_env(environ), keys)

    @property
    def directory(self) -> Path:
        """The filesystem backend's directory (an AttributeError on other backends)."""
        if isinstance(self.backend, FilesystemBackend):
            return self.backend.directory
        raise AttributeError(f"the {self.backend.name} evidence backend has no directory")

    @property
    def keys(self) -> KeyRing:
        """The key ring; ConfigError when none was configured."""
        if self._keys is None:
            return KeyRing.from_env()
        return self._keys

    # -- preserve ---------------------------------------------------------------

    def preserve(
        self,
        content: bytes,
        *,
        actor: str,
        basis: str,
        legal_basis: str,
        media_type: str = "application/octet-stream",
        account_id: str | None = None,
        source: str = "",
        metadata: dict[str, Any] | None = None,
        request_id: int | None = None,
        hold_for: timedelta | None = None,
    ) -> EvidenceRecord:
        """Encrypt and store ``content`` under a first hold; whole or not at all."""
        if not content:
            raise InputError("evidence content is empty; nothing to preserve")
        _check_hold(basis, legal_basis, "a legal basis is required to preserve evidence")
        ring = self.keys
        key_id = ring.active_id
        object_id = str(uuid.uuid4())
        digest = hashlib.sha256(content).hexdigest()
        meta_json = json.dumps(metadata or {}, sort_keys=True).encode()
        blob = seal(ring, key_id, content, aad("content", object_id, key_id))
        meta_ct = seal(ring, key_id, meta_json, aad("metadata", object_id, key_id)).hex()
        name = f"{object_id}.{key_id}.ssev"
        now = self.clock()
        length = self._hold_length(basis, hold_for)
        # The object first, whole (atomic put); then the row in one transaction.
        self.backend.put_atomic(name, MAGIC + blob)
        try:
            self._after_put(name)
            with write_transaction(self.store) as conn:
                sql.insert_object(
                    conn,
                    id=object_id,
                    key_id=key_id,
                    path=name,
                    sha256=digest,
                    size_bytes=len(content),
                    media_type=media_type[:100],
                    account_id=account_id,
                    source=source[:200],
                    metadata_ct=meta_ct,
                    status="active",
                    created_at=now,
                )
                _insert_hold(conn, object_id, basis, legal_basis, request_id, actor, now, length)
                self.audit.append_in(
                    conn,
                    actor=actor,
                    action="evidence.preserve",
                    object_type="evidence",
                    object_id=object_id,
                    reason=legal_basis,
                    detail={"sha256": digest, "key_id": key_id, "basis": basis},
                    now=now,
                )
                self._before_commit(conn)
        except BaseException:
            self._discard(name)
            raise
        return self.record(object_id)

    def _discard(self, key: str) -> None:
        """Delete an object nobody points at; a failure leaves an orphan for the sweep."""
        try:
            self.backend.delete(key)
        except Exception:  # never hide the error that made us clean up
            log.warning("could not delete an unreferenced evidence object; it will be swept")

    # Fault-injection points for tests (a crash between the steps).
    def _after_put(self, key: str) -> None:
        """Called after the object is stored, before the transaction starts."""

    def _before_commit(self, conn: Any) -> None:
        """Called after the row, hold and audit event are written, before the commit."""

    def _hold_length(self, basis: str, hold_for: timedelta | None) -> timedelta:
        length = hold_for if hold_for is not None else DEFAULT_HOLD[basis]
        if not timedelta(0) < length <= MAX_HOLD:
            raise InputError(f"a hold lasts more than 0 and at most {MAX_HOLD.days} days")
        return length

    # -- read -------------------------------------------------------------------

    def record(self, evidence_id: str) -> EvidenceRecord:
        """An object's row, or NotFoundError."""
        with self.store.engine.connect() as conn:
            return sql.get_object(conn, evidence_id)

    def holds(self, evidence_id: str) -> list[Hold]:
        """Every hold of an object."""
        with self.store.engine.connect() as conn:
            sql.get_object(conn, evidence_id)
            return sql.holds_of(conn, evidence_id)

    def list_objects(self, *, limit: int = 100) -> list[EvidenceRecord]:
        """Newest objects first."""
        with self.store.engine.connect() as conn:
            return sql.list_objects(conn, limit=limit)

    def for_accounts(self, account_ids: list[str]) -> list[EvidenceRecord]:
        """Active objects preserved for these accounts."""
        with self.store.engine.connect() as conn:
            return sql.objects_for(conn, account_ids)

    def _decrypt(self, record: EvidenceRecord) -> EvidenceObject:
        if record.status != "active":
            raise NotFoundError(f"evidence {record.id} was purged on {record.purged_at}")
        what = f"evidence {record.id}"
        try:
            raw = self.backend.get(record.path)
        except EvidenceObjectMissing:
            raise EvidenceIntegrityError(
                f"{what}: its object {record.path} is missing from {self.backend.describe()}; "
                "restore it from backup (the row says it should be there)"
            ) from None
        if not raw.startswith(MAGIC):
            raise EvidenceIntegrityError(f"{what}: its object is not a safestream evidence object")
        ring = self.keys
        content = open_sealed(
            ring,
            record.key_id,
            raw[len(MAGIC) :],
            aad("content", record.id, record.key_id),
            what=what,
        )
        if hashlib.sha256(content).hexdigest() != record.sha256:
            raise EvidenceIntegrityError(
                f"{what}: the decrypted content does not match its recorded SHA-256"
            )
        meta_raw = open_sealed(
            ring,
            record.key_id,
            bytes.fromhex(record.metadata_ct),
            aad("metadata", record.id, record.key_id),
            what=f"{what} metadata",
        )
        return EvidenceObject(
            id=record.id,
            content=content,
            sha256=record.sha256,
            media_type=record.media_type,
            metadata=json.loads(meta_raw),
            key_id=record.key_id,
        )

    def get(
        self,
        evidence_id: str,
        *,
        actor: str,
        reason: str,
        action: str = "evidence.view",
        detail: dict[str, Any] | None = None,
    ) -> EvidenceObject:
        """Decrypt and verify one object; the access is audited (with its reason) first."""
        if len(reason.strip()) < 3:
            raise InputError("state a reason for viewing evidence (at least 3 characters)")
        record = self.record(evidence_id)
        # Audit before decrypting: an access that fails is still an access attempt.
        self.audit.append(
            actor=actor,
            action=action,
            object_type="evidence",
            object_id=evidence_id,
            reason=reason,
            detail={"key_id": record.key_id, **(detail or {})},
            now=self.clock(),
        )
        try:
            return self._decrypt(record)
        except EvidenceIntegrityError as exc:
            # A failed check is a custody event in its own right: on the audit chain.
            self.audit.append(
                actor=actor,
                action="evidence.integrity_failure",
                object_type="evidence",
                object_id=evidence_id,
                reason=reason,
                detail={"key_id": record.key_id, "error": str(exc)},
                now=self.clock(),
            )
            raise

    def verify(self, evidence_id: str) -> None:
        """Decrypt and check one object without returning it (integrity scan)."""
        self._decrypt(self.record(evidence_id))

    # -- holds ------------------------------------------------------------------

    def add_hold(
        self,
        evidence_id: str,
        *,
        actor: str,
        basis: str,
        legal_basis: str,
        request_id: int | None = None,
        hold_for: timedelta | None = None,
    ) -> Hold:
        """Add a preservation hold (audited)."""
        _check_hold(basis, legal_basis, "a hold needs a legal basis")
        length = self._hold_length(basis, hold_for)
        now = self.clock()
        with write_transaction(self.store) as conn:
            # Locked: a purge that already chose this object (and locked it) finishes
            # first, and then we see it purged instead of holding a destroyed object.
            record = sql.get_object(conn, evidence_id, lock=True)
            if record.status != "active":
                raise ConflictError(f"evidence {evidence_id} was purged; it cannot be held")
            hold = _insert_hold(
                conn, evidence_id, basis, legal_basis, request_id, actor, now, length
            )
            self.audit.append_in(
                conn,
                actor=actor,
                action="evidence.hold",
                object_type="evidence",
                object_id=evidence_id,
                reason=legal_basis,
                detail={
                    "hold_id": hold.id,
                    "basis": basis,
                    "expires_at": hold.expires_at.isoformat(),
                },
                now=now,
            )
        return hold

    def renew_hold(self, hold_id: int, *, actor: str, reason: str) -> Hold:
        """Extend a preservation-request hold by another 90 days from now (audited)."""
        now = self.clock()
        with write_transaction(self.store) as conn:
            hold = sql.get_hold(conn, hold_id)
            if hold.released_at is not None:
                raise ConflictError(f"hold {hold_id} was released; add a new hold instead")
            if hold.basis != BASIS_PRESERVATION:
                raise ConflictError(
                    f"hold {hold_id} has basis {hold.basis!r}; only preservation-request "
                    "holds are renewable"
                )
            expires = max(hold.expires_at, now) + DEFAULT_HOLD[BASIS_PRESERVATION]
            sql.update_hold(conn, hold_id, expires_at=expires, renewals=hold.renewals + 1)
            self.audit.append_in(
                conn,
                actor=actor,
                action="evidence.hold_renew",
                object_type="evidence",
                object_id=hold.evidence_id,
                reason=reason,
                detail={"hold_id": hold_id, "expires_at": expires.isoformat()},
                now=now,
            )
            return sql.get_hold(conn, hold_id)

    def release_hold(self, hold_id: int, *, actor: str, reason: str) -> Hold:
        """Release a hold early (audited)."""
        if not reason.strip():
            raise InputError("releasing a hold needs a reason")
        now = self.clock()
        with write_transaction(self.store) as conn:
            hold = sql.get_hold(conn, hold_id)
            if hold.released_at is not None:
                raise ConflictError(f"hold {hold_id} is already released")
            sql.update_hold(conn, hold_id, released_at=now)
            self.audit.append_in(
                conn,
                actor=actor,
                action="evidence.hold_release",
                object_type="evidence",
                object_id=hold.evidence_id,
                reason=reason,
                detail={"hold_id": hold_id},
                now=now,
            )
            return sql.get_hold(conn, hold_id)

    # -- purge ------------------------------------------------------------------

    def purge_expired(self, *, actor: str = "system:purge") -> list[str]:
        """Destroy objects with no active hold; each purge is audited. Returns their ids.

        The row is marked purged and the audit event written in one transaction
        with a re-check of the holds (a hold added meanwhile wins); the object
        is deleted from storage after the commit, so a crash leaves an orphan
        object (swept later), never a live row without its object.
        """
        now = self.clock()
        purged: list[str] = []
        with write_transaction(self.store) as conn:
            candidates = sql.purge_candidates(conn, now, lock=self.store.dialect != "sqlite")
            for record in candidates:
                if sql.has_active_hold(conn, record.id, now):
                    continue
                sql.mark_purged(conn, record.id, now)
                self.audit.append_in(
                    conn,
                    actor=actor,
                    action="evidence.purge",
                    object_type="evidence",
                    object_id=record.id,
                    reason="retention expired without an active hold",
                    detail={"sha256": record.sha256},
                    now=now,
                )
                purged.append(record.path)
        ids = []
        for path in purged:
            self.backend.delete(path)
            ids.append(path.split(".", 1)[0])
        self.sweep_orphans()
        return ids

    def _orphans(self) -> dict[str, float]:
        """Stored objects no row points at, with their age in seconds (by our clock)."""
        # List first, then read the rows: an object stored after the listing is
        # not seen, and one whose row commits in between is known.
        listed = list(self.backend.list_keys())
        with self.store.engine.connect() as conn:
            known = sql.known_paths(conn)
        now = self.clock()
        return {
            key: (now - modified).total_seconds()
            for key, modified in listed
            if key not in known and _OUR_KEY.match(key)
        }

    def sweep_orphans(self, *, min_age_s: float = 3600.0) -> int:
        """Delete stored objects no row points at (left by a crash) older than ``min_age_s``."""
        removed = 0
        for key, age in self._orphans().items():
            # A young object may belong to a preservation still in its transaction.
            if age >= min_age_s:
                self.backend.delete(key)
                removed += 1
        return removed

    def check_storage(self) -> StorageCheck:
        """Compare rows and stored objects: orphans (harmless) and missing objects (not)."""
        with self.store.engine.connect() as conn:
            active = sql.active_paths(conn)
        orphans = self._orphans()
        missing = sorted(
            evidence_id for evidence_id, path in active if not self.backend.exists(path)
        )
        return StorageCheck(rows=len(active), orphans=orphans, missing=missing)

    # -- key rotation -----------------------------------------------------------

    def rotate(self, *, actor: str, batch: int = 100) -> int:
        """Re-encrypt every object not under the active key; returns how many.

        Per object: decrypt (verifying), store the new object, point the row at
        it in a transaction with an audit event, then delete the old object. A
        crash leaves the row on the old object (still readable) and an orphan.
        """
        ring = self.keys
        new_id = ring.active_id
        done = 0
        while True:
            with self.store.engine.connect() as conn:
                stale = sql.stale_key_objects(conn, new_id, limit=batch)
            if not stale:
                return done
            for record in stale:
                obj = self._decrypt(record)
                blob = seal(ring, new_id, obj.content, aad("content", record.id, new_id))
                meta = json.dumps(obj.metadata, sort_keys=True).encode()
                meta_ct = seal(ring, new_id, meta, aad("metadata", record.id, new_id)).hex()
                name = f"{record.id}.{new_id}.ssev"
                self.backend.put_atomic(name, MAGIC + blob)
                try:
                    with write_transaction(self.store) as conn:
                        if not sql.rekey_object(
                            conn,
                            record.id,
                            record.key_id,
                            key_id=new_id,
                            path=name,
                            metadata_ct=meta_ct,
                        ):
                            self._discard(name)
                            continue
                        self.audit.append_in(
                            conn,
                            actor=actor,
                            action="evidence.rekey",
                            object_type="evidence",
                            object_id=record.id,
                            reason="key rotation",
                            detail={"from_key_id": record.key_id, "to_key_id": new_id},
                            now=self.clock(),
                        )
                except BaseException:
                    self._discard(name)
                    raise
                self.backend.delete(record.path)
                done += 1


def _check_hold(basis: str, legal_basis: str, missing_basis_message: str) -> None:
    if not legal_basis.strip():
        raise InputError(missing_basis_message)
    if basis not in DEFAULT_HOLD:
        raise InputError(f"basis must be one of {sorted(DEFAULT_HOLD)}, got {basis!r}")


def _insert_hold(
    conn: Any,
    evidence_id: str,
    basis: str,
    legal_basis: str,
    request_id: int | None,
    actor: str,
    now: datetime,
    length: timedelta,
) -> Hold:
    """A new, never-renewed hold running ``length`` from ``now``."""
    return sql.insert_hold(
        conn,
        evidence_id=evidence_id,
        basis=basis,
        legal_basis=legal_basis,
        request_id=request_id,
        created_by=actor,
        created_at=now,
        expires_at=now + length,
        renewals=0,
    )


__all__ = [
    "ENV_DIR",
    "EvidenceObject",
    "EvidenceStore",
    "StorageCheck",
    "evidence_dir",
    "record_dict",
]
