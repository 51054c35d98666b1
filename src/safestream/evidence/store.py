"""The encrypted evidence store (filesystem backend).

Layout: one file per object under the evidence directory, named
``<object id>.<key id>.ssev``, holding ``MAGIC || nonce || AES-256-GCM
ciphertext+tag`` of the content. The database row holds the key id, the
SHA-256 of the plaintext (checked on every read), the size, the media type and
the metadata, itself sealed with the same key. Every change writes an audit
event in the same transaction as the row.

Atomicity of :meth:`EvidenceStore.preserve`: the ciphertext is written to a
temporary file and fsynced; then, inside one database transaction, the row,
its hold and its audit event are inserted, the file is renamed into place and
the transaction commits. A failure before the commit removes the file; a crash
(no chance to clean up) leaves at most an unreferenced file, which readers
never see (no row points at it) and :meth:`sweep_orphans` (run by the purge
job) deletes. So an object is either whole (row and file) or absent.

An S3-compatible backend is not implemented yet; the filesystem is the only one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from safestream.errors import ConfigError, ConflictError, InputError, NotFoundError
from safestream.evidence.crypto import KeyRing, aad, open_sealed, seal
from safestream.evidence.errors import EvidenceIntegrityError
from safestream.store import evidence as sql
from safestream.store.audit import AuditRepository
from safestream.store.db import Store, default_data_dir
from safestream.store.evidence import EvidenceRecord, Hold
from safestream.store.jobs import write_transaction
from safestream.store.models import utcnow

ENV_DIR = "SAFESTREAM_EVIDENCE_DIR"
MAGIC = b"SSEV1\n"
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


def evidence_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$SAFESTREAM_EVIDENCE_DIR`` or ``<data dir>/evidence``."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_DIR, "").strip()
    return Path(raw).expanduser() if raw else default_data_dir() / "evidence"


def _fsync_dir(path: Path) -> None:
    # Makes the rename durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
        directory: Path,
        keys: KeyRing | None,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.directory = directory
        self._keys = keys
        self.clock = clock
        self.audit = AuditRepository(store)

    @classmethod
    def from_env(
        cls, store: Store, environ: Mapping[str, str] | None = None, *, need_keys: bool = True
    ) -> EvidenceStore:
        """The store configured by ``SAFESTREAM_EVIDENCE_DIR`` and the evidence keys."""
        keys = KeyRing.from_env(environ) if need_keys else None
        return cls(store, evidence_dir(environ), keys)

    @property
    def keys(self) -> KeyRing:
        """The key ring; ConfigError when none was configured."""
        if self._keys is None:
            return KeyRing.from_env()
        return self._keys

    def _dir(self) -> Path:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the evidence directory {self.directory}: {exc.strerror}; "
                f"set {ENV_DIR} to a writable directory"
            ) from exc
        return self.directory

    def _write_temp(self, blob: bytes) -> Path:
        tmp = self._dir() / f".tmp-{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + blob)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

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
        tmp = self._write_temp(blob)
        final = self.directory / name
        try:
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
                self._before_rename(conn)
                os.replace(tmp, final)
                _fsync_dir(self.directory)
                self._before_commit(conn)
        except BaseException:
            tmp.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            raise
        return self.record(object_id)

    # Fault-injection points for tests (a crash between the steps).
    def _before_rename(self, conn: Any) -> None:
        """Called after the row is written, before the file is renamed into place."""

    def _before_commit(self, conn: Any) -> None:
        """Called after the rename, before the transaction commits."""

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
            raw = (self.directory / record.path).read_bytes()
        except FileNotFoundError:
            raise EvidenceIntegrityError(
                f"{what}: its file {record.path} is missing from {self.directory}"
            ) from None
        if not raw.startswith(MAGIC):
            raise EvidenceIntegrityError(f"{what}: its file is not a safestream evidence file")
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
        return self._decrypt(record)

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
        with a re-check of the holds (a hold added meanwhile wins); the file is
        deleted after the commit, so a crash leaves an orphan file, never a
        live row without its file.
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
            (self.directory / path).unlink(missing_ok=True)
            ids.append(path.split(".", 1)[0])
        self.sweep_orphans()
        return ids

    def sweep_orphans(self, *, min_age_s: float = 3600.0) -> int:
        """Delete files no row points at (left by a crash) older than ``min_age_s``."""
        if not self.directory.is_dir():
            return 0
        with self.store.engine.connect() as conn:
            known = sql.known_paths(conn)
        now_s = self.clock().timestamp()
        removed = 0
        for path in self.directory.iterdir():
            if path.name in known or not path.is_file():
                continue
            try:
                age = now_s - path.stat().st_mtime
            except FileNotFoundError:
                continue
            # A young file may belong to a preservation still in its transaction.
            if age >= min_age_s:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- key rotation -----------------------------------------------------------

    def rotate(self, *, actor: str, batch: int = 100) -> int:
        """Re-encrypt every object not under the active key; returns how many.

        Per object: decrypt (verifying), write the new file, point the row at it
        in a transaction with an audit event, then delete the old file. A crash
        leaves the row on the old file (still readable) and an orphan new file.
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
                tmp = self._write_temp(blob)
                final = self.directory / name
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
                            tmp.unlink(missing_ok=True)
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
                        os.replace(tmp, final)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
                (self.directory / record.path).unlink(missing_ok=True)
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
