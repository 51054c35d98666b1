"""SQL for the service: API keys and check records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from safestream.auth import Role, key_digest, new_key
from safestream.errors import InputError, NotFoundError
from safestream.store.db import Store
from safestream.store.models import ApiKeyRow, CheckRow, utcnow


@dataclass(frozen=True)
class ApiKey:
    """An API key as listed (never the secret)."""

    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.id, row.name, Role(row.role), row.prefix, row.created_at, row.revoked_at)


class KeyRepository:
    """Create, list, revoke and verify API keys."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, role: str, name: str = "", *, actor: str = "system") -> tuple[str, ApiKey]:
        """Create a key; returns the secret key (shown once) and its record.

        The creation (a grant of a role) is written to the audit chain.
        """
        try:
            parsed = Role(role)
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise InputError(f"unknown role {role!r}; roles: {roles}") from None
        key, prefix = new_key()
        with self.store.session() as session:
            row = ApiKeyRow(
                name=name or f"{parsed.value} key",
                role=parsed.value,
                prefix=prefix,
                key_sha256=key_digest(key),
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            record = _key(row)
        self._audit(actor, "api_key.create", record, f"role {record.role.value}")
        return key, record

    def list(self) -> list[ApiKey]:
        """All keys, newest first."""
        with self.store.session() as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id.desc())).all()
            return [_key(r) for r in rows]

    def revoke(self, key_id: int, *, actor: str = "system") -> ApiKey:
        """Revoke a key (audited); it stops working at once."""
        with self.store.session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"no API key with id {key_id}")
            changed = row.revoked_at is None
            if changed:
                row.revoked_at = utcnow()
            record = _key(row)
        if changed:
            self._audit(actor, "api_key.revoke", record, "")
        return record

    def _audit(self, actor: str, action: str, record: ApiKey, reason: str) -> None:
        from safestream.store.audit import AuditRepository

        AuditRepository(self.store).append(
            actor=actor,
            action=action,
            object_type="api_key",
            object_id=str(record.id),
            reason=reason,
            detail={"prefix": record.prefix, "role": record.role.value, "name": record.name},
        )

    def record_login(self, record: ApiKey) -> None:
        """Audit that a key authenticated (its first use by a server process in a UTC day)."""
        self._audit(
            f"key:{record.id}",
            "api_key.login",
            record,
            "first use of the key by this server process today (UTC)",
        )

    def revoked_among(self, key_ids: set[int]) -> set[int]:
        """Which of ``key_ids`` are revoked (or deleted)."""
        with self.store.session() as session:
            live = set(
                session.scalars(
                    select(ApiKeyRow.id).where(
                        ApiKeyRow.id.in_(sorted(key_ids)), ApiKeyRow.revoked_at.is_(None)
                    )
                ).all()
            )
        return key_ids - live

    def verify(self, key: str) -> ApiKey | None:
        """The live key matching ``key``, or None."""
        if not key.startswith("ss_") or len(key) > 200:
            return None
        with self.store.session() as session:
            row = session.scalar(
                select(ApiKeyRow).where(
                    ApiKeyRow.key_sha256 == key_digest(key), ApiKeyRow.revoked_at.is_(None)
                )
            )
            return _key(row) if row else None


class CheckRepository:
    """Check records: what was checked, from whom, and the verdict."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, **fields: Any) -> None:
        """Store one check record."""
        with self.store.session() as session:
            session.add(CheckRow(received_at=utcnow(), **fields))

    def get(self, content_id: str) -> dict[str, Any]:
        """One check record as a dict."""
        with self.store.session() as session:
            row = session.scalar(select(CheckRow).where(CheckRow.content_id == content_id))
            if row is None:
                raise NotFoundError(f"no check with content id {content_id!r}")
            return {
                "content_id": row.content_id,
                "received_at": row.received_at.isoformat(),
                "context": {
                    "account_id": row.account_id,
                    "username": row.username,
                    "profile_url": row.profile_url,
                    "ip_address": row.ip_address,
                    "source_port": row.source_port,
                    "client_timestamp": (
                        row.client_timestamp.isoformat() if row.client_timestamp else None
                    ),
                    "surface": row.surface,
                },
                "outcome": row.outcome,
                "signals": row.signals,
                "matches": row.matches,
                "reasons": row.reasons,
                "scores": row.scores,
            }

    def purge_older_than(self, days: int) -> int:
        """Delete check records older than ``days`` (retention); return how many."""
        if days < 1:
            raise InputError("retention must be at least 1 day")
        cutoff = utcnow() - timedelta(days=days)
        with self.store.session() as session:
            result = session.execute(delete(CheckRow).where(CheckRow.received_at < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["ApiKey", "CheckRepository", "KeyRepository"]
