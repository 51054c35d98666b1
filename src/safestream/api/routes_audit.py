"""Audit-trail routes: read the chain and verify it (role ``auditor``; read only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from safestream.api.custody import audit_repository
from safestream.api.deps import roles
from safestream.auth import Role
from safestream.store.audit import AuditRepository

router = APIRouter(tags=["audit"])
Audit = Annotated[AuditRepository, Depends(audit_repository)]


@router.get("/v1/audit/events", **roles(Role.AUDITOR))
def list_events(
    audit: Audit,
    after_seq: Annotated[int, Query(ge=0, description="events after this sequence number")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Audit events in chain order (page with ``after_seq``)."""
    events = audit.list_events(limit=limit, after_seq=after_seq, action=action, object_id=object_id)
    return {
        "events": [e.to_dict() for e in events],
        "next_after_seq": events[-1].seq if len(events) == limit else None,
    }


@router.get("/v1/audit/verify", **roles(Role.AUDITOR))
def verify(audit: Audit) -> dict[str, Any]:
    """Verify the whole chain; names the first edited, deleted or reordered event."""
    return audit.verify().to_dict()
