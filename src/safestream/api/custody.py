"""Shared dependencies of the requests, evidence and audit routers.

The services are built once per app from the environment and kept on
``app.state``; tests (or an embedding application) may set
``app.state.safestream_evidence`` / ``app.state.safestream_requests`` first.
"""

from __future__ import annotations

from fastapi import Request

from safestream.actions.webhook import WebhookConfig
from safestream.api.deps import _state
from safestream.evidence.store import EvidenceStore
from safestream.requests.model import DeadlineStandards
from safestream.requests.service import RequestService
from safestream.store.audit import AuditRepository
from safestream.store.service import ApiKey


def actor(request: Request) -> str:
    """The audit actor of a request: the API key's id, name and role."""
    key = request.state.api_key
    assert isinstance(key, ApiKey)
    return f"api_key:{key.id}:{key.role.value}:{key.name}"[:200]


def evidence_store(request: Request) -> EvidenceStore:
    """The app's evidence store (keys are read when first needed)."""
    app_state = request.app.state
    ev = getattr(app_state, "safestream_evidence", None)
    if ev is None:
        ev = EvidenceStore.from_env(_state(request).store, need_keys=False)
        app_state.safestream_evidence = ev
    assert isinstance(ev, EvidenceStore)
    return ev


def request_service(request: Request) -> RequestService:
    """The app's law-enforcement request service."""
    app_state = request.app.state
    svc = getattr(app_state, "safestream_requests", None)
    if svc is None:
        svc = RequestService(
            _state(request).store,
            standards=DeadlineStandards.from_env(),
            webhook=WebhookConfig.from_env(),
        )
        app_state.safestream_requests = svc
    assert isinstance(svc, RequestService)
    return svc


def audit_repository(request: Request) -> AuditRepository:
    """The audit chain of the app's store."""
    return AuditRepository(_state(request).store)
