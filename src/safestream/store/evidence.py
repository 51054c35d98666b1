"""SQL of the evidence store: object rows, holds, purge candidates, rotation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, exists, insert, select, update

from safestream.errors import NotFoundError
from safestream.store.models import EvidenceHoldRow, EvidenceRow

OBJECTS = cast(Table, EvidenceRow.__table__)
HOLDS = cast(Table, EvidenceHoldRow.__table__)


@dataclass(frozen=True)
class EvidenceRecord:
    """An evidence object's row (metadata still encrypted)."""

    id: str
    key_id: str
    path: str
    sha256: str
    size_bytes: int
    media_type: str
    account_id: str | None
    source: str
    metadata_ct: str
    status: str
    created_at: datetime
    purged_at: datetime | None


@dataclass(frozen=True)
class Hold:
    """A preservation hold on one object."""

    id: int
    evidence_id: str
    basis: str
    legal_basis: str
    request_id: int | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    renewals: int
    released_at: datetime | None

    def active(self, now: datetime) -> bool:
        """Not released and not expired at ``now``."""
        return self.released_at is None and self.expires_at > now

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.id,
            "evidence_id": self.evidence_id,
            "basis": self.basis,
            "legal_basis": self.legal_basis,
            "request_id": self.request_id,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "renewals": self.renewals,
            "released_at": self.released_at.isoformat() if self.released_at else None,
        }


def _record(row: Any) -> EvidenceRecord:
    return EvidenceRecord(**{k: row._mapping[k] for k in EvidenceRecord.__dataclass_fields__})


def _hold(row: Any) -> Hold:
    return Hold(**{k: row._mapping[k] for k in Hold.__dataclass_fields__})


def insert_object(conn: Connection, **values: Any) -> None:
    """Insert one object row."""
    conn.execute(insert(OBJECTS).values(**values))


def get_object(conn: Connection, evidence_id: str, *, lock: bool = False) -> EvidenceRecord:
    """One object row (locked FOR UPDATE with ``lock``; a no-op on SQLite), or NotFoundError."""
    query = select(OBJECTS).where(OBJECTS.c.id == evidence_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"no evidence object with id {evidence_id!r}")
    return _record(row)


def objects_for(conn: Connection, account_ids: list[str]) -> list[EvidenceRecord]:
    """Active objects preserved for any of these accounts."""
    query = (
        select(OBJECTS)
        .where(OBJECTS.c.account_id.in_(account_ids), OBJECTS.c.status == "active")
        .order_by(OBJECTS.c.created_at)
    )
    return [_record(r) for r in conn.execute(query)]


def list_objects(conn: Connection, *, limit: int = 100) -> list[EvidenceRecord]:
    """Newest objects first."""
    query = select(OBJECTS).order_by(OBJECTS.c.created_at.desc()).limit(limit)
    return [_record(r) for r in conn.execute(query)]


def insert_hold(conn: Connection, **values: Any) -> Hold:
    """Add a hold; returns it."""
    hold_id = conn.execute(insert(HOLDS).values(**values).returning(HOLDS.c.id)).scalar_one()
    return get_hold(conn, int(hold_id))


def get_hold(conn: Connection, hold_id: int) -> Hold:
    """One hold, or NotFoundError."""
    row = conn.execute(select(HOLDS).where(HOLDS.c.id == hold_id)).first()
    if row is None:
        raise NotFoundError(f"no preservation hold with id {hold_id}")
    return _hold(row)


def holds_of(conn: Connection, evidence_id: str) -> list[Hold]:
    """Every hold of an object, oldest first."""
    query = select(HOLDS).where(HOLDS.c.evidence_id == evidence_id).order_by(HOLDS.c.id)
    return [_hold(r) for r in conn.execute(query)]


def update_hold(conn: Connection, hold_id: int, **values: Any) -> None:
    """Change a hold (renewal, release)."""
    conn.execute(update(HOLDS).where(HOLDS.c.id == hold_id).values(**values))


def _active_hold(now: datetime) -> Any:
    return exists().where(
        and_(
            HOLDS.c.evidence_id == OBJECTS.c.id,
            HOLDS.c.released_at.is_(None),
            HOLDS.c.expires_at > now,
        )
    )


def purge_candidates(conn: Connection, now: datetime, *, lock: bool) -> list[EvidenceRecord]:
    """Active objects without any active hold (locked FOR UPDATE on PostgreSQL)."""
    query = select(OBJECTS).where(OBJECTS.c.status == "active", ~_active_hold(now))
    if lock:
        query = query.with_for_update(skip_locked=True)
    return [_record(r) for r in conn.execute(query)]


def has_active_hold(conn: Connection, evidence_id: str, now: datetime) -> bool:
    """True when a hold protects the object at ``now``."""
    query = select(OBJECTS.c.id).where(OBJECTS.c.id == evidence_id, _active_hold(now))
    return conn.execute(query).first() is not None


def mark_purged(conn: Connection, evidence_id: str, now: datetime) -> None:
    """Record that an object's ciphertext was destroyed (its row stays, for the record)."""
    conn.execute(
        update(OBJECTS)
        .where(OBJECTS.c.id == evidence_id)
        .values(status="purged", purged_at=now, metadata_ct="")
    )


def stale_key_objects(conn: Connection, active_key_id: str, *, limit: int) -> list[EvidenceRecord]:
    """Active objects encrypted with another key than the active one."""
    query = (
        select(OBJECTS)
        .where(OBJECTS.c.status == "active", OBJECTS.c.key_id != active_key_id)
        .order_by(OBJECTS.c.id)
        .limit(limit)
    )
    return [_record(r) for r in conn.execute(query)]


def rekey_object(
    conn: Connection, evidence_id: str, old_key_id: str, *, key_id: str, path: str, metadata_ct: str
) -> bool:
    """Point a row at its re-encrypted file, if it still has the old key (else False)."""
    result = conn.execute(
        update(OBJECTS)
        .where(OBJECTS.c.id == evidence_id, OBJECTS.c.key_id == old_key_id)
        .values(key_id=key_id, path=path, metadata_ct=metadata_ct)
    )
    return bool(getattr(result, "rowcount", 0))


def known_paths(conn: Connection) -> set[str]:
    """Every file name a row points at."""
    return {str(p) for p in conn.execute(select(OBJECTS.c.path)).scalars()}


def active_paths(conn: Connection) -> list[tuple[str, str]]:
    """(id, stored object key) of every active object."""
    query = select(OBJECTS.c.id, OBJECTS.c.path).where(OBJECTS.c.status == "active")
    return [(str(i), str(p)) for i, p in conn.execute(query)]


__all__ = ["EvidenceRecord", "Hold"]
