"""Evidence routes: preserve, inspect, view (blurred by default), holds.

Viewing content needs role ``reviewer`` or ``le_liaison`` and a stated
``reason``; every view is audited before the content is decrypted. Images are
served greyscale and blurred (reviewer wellness); ``original=true`` serves the
unblurred bytes and is audited as such (``evidence.view_original``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from safestream.api.custody import actor, evidence_store
from safestream.api.deps import roles
from safestream.auth import Role
from safestream.errors import InputError
from safestream.evidence.errors import EvidenceIntegrityError, EvidenceStorageError
from safestream.evidence.store import EvidenceStore, record_dict
from safestream.evidence.view import obscured_png

router = APIRouter(tags=["evidence"])
Evidence = Annotated[EvidenceStore, Depends(evidence_store)]
Basis = Literal["report", "preservation_request", "other"]
MAX_EVIDENCE_BYTES = 100 * 1024 * 1024


class HoldIn(BaseModel):
    """A new preservation hold."""

    basis: Basis
    legal_basis: str = Field(min_length=1, max_length=5000)
    hold_days: int | None = Field(default=None, ge=1, le=5 * 365)
    request_id: int | None = None


class ReasonIn(BaseModel):
    """Why a hold is renewed or released."""

    reason: str = Field(min_length=3, max_length=5000)


def _integrity(exc: EvidenceIntegrityError) -> Response:
    # The record exists but its stored bytes fail their checks: the resource's state
    # conflicts with serving it (409), said exactly; never a 500, never garbage.
    return JSONResponse({"detail": str(exc), "kind": "evidence_integrity"}, status_code=409)


def _unavailable(exc: EvidenceStorageError) -> Response:
    # The bucket or disk is unreachable: a retryable 503, not the caller's mistake.
    return JSONResponse({"detail": str(exc), "kind": "evidence_storage"}, status_code=503)


@router.post(
    "/v1/evidence",
    status_code=201,
    response_model=None,
    **roles(Role.LE_LIAISON, Role.REVIEWER),
)
async def preserve(
    request: Request,
    evidence: Evidence,
    file: Annotated[UploadFile, File(description="the content to preserve")],
    basis: Annotated[Basis, Form()],
    legal_basis: Annotated[str, Form(min_length=1, max_length=5000)],
    account_id: Annotated[str | None, Form(max_length=200)] = None,
    source: Annotated[str, Form(max_length=200)] = "",
    request_id: Annotated[int | None, Form()] = None,
) -> dict[str, Any] | Response:
    """Encrypt and store content under a first hold (1 year for a report, 90 days else)."""
    data = await file.read(MAX_EVIDENCE_BYTES + 1)
    if len(data) > MAX_EVIDENCE_BYTES:
        raise InputError(f"evidence is larger than {MAX_EVIDENCE_BYTES} bytes")
    try:
        record = await run_in_threadpool(
            lambda: evidence.preserve(
                data,
                actor=actor(request),
                basis=basis,
                legal_basis=legal_basis,
                media_type=file.content_type or "application/octet-stream",
                account_id=account_id,
                source=source,
                metadata={"filename": file.filename or ""},
                request_id=request_id,
            )
        )
    except EvidenceStorageError as exc:
        return _unavailable(exc)
    return record_dict(record, evidence.holds(record.id))


@router.get("/v1/evidence", **roles(Role.LE_LIAISON, Role.REVIEWER))
def list_evidence(
    evidence: Evidence, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """Evidence records, newest first (no content)."""
    return {"evidence": [record_dict(r) for r in evidence.list_objects(limit=limit)]}


@router.get("/v1/evidence/storage/check", **roles(Role.LE_LIAISON))
def check_storage(evidence: Evidence) -> Response:
    """Rows against stored objects: orphans (left by a crash) and missing objects."""
    try:
        result = evidence.check_storage()
    except EvidenceStorageError as exc:
        return _unavailable(exc)
    return JSONResponse({"backend": evidence.backend.name, **result.to_dict()})


@router.get("/v1/evidence/{evidence_id}", **roles(Role.LE_LIAISON, Role.REVIEWER))
def get_record(evidence: Evidence, evidence_id: str) -> dict[str, Any]:
    """One evidence record with its holds (no content)."""
    return record_dict(evidence.record(evidence_id), evidence.holds(evidence_id))


@router.get("/v1/evidence/{evidence_id}/content", **roles(Role.LE_LIAISON, Role.REVIEWER))
def view_content(
    request: Request,
    evidence: Evidence,
    evidence_id: str,
    reason: Annotated[str, Query(min_length=3, max_length=2000, description="why you view it")],
    original: Annotated[bool, Query(description="unblurred bytes (audited)")] = False,
) -> Response:
    """The content: greyscale and blurred by default; the original only on request."""
    try:
        obj = evidence.get(
            evidence_id,
            actor=actor(request),
            reason=reason,
            action="evidence.view_original" if original else "evidence.view",
            detail={"original": original},
        )
    except EvidenceIntegrityError as exc:
        return _integrity(exc)
    except EvidenceStorageError as exc:
        return _unavailable(exc)
    headers = {"X-Content-SHA256": obj.sha256, "Cache-Control": "no-store"}
    if original:
        return Response(obj.content, media_type=obj.media_type, headers=headers)
    return Response(obscured_png(obj.content), media_type="image/png", headers=headers)


@router.post("/v1/evidence/{evidence_id}/holds", status_code=201, **roles(Role.LE_LIAISON))
def add_hold(
    request: Request, evidence: Evidence, evidence_id: str, body: HoldIn
) -> dict[str, Any]:
    """Add a preservation hold; a held object is never purged."""
    hold = evidence.add_hold(
        evidence_id,
        actor=actor(request),
        basis=body.basis,
        legal_basis=body.legal_basis,
        request_id=body.request_id,
        hold_for=timedelta(days=body.hold_days) if body.hold_days else None,
    )
    return hold.to_dict()


@router.post("/v1/evidence/holds/{hold_id}/renew", **roles(Role.LE_LIAISON))
def renew_hold(
    request: Request, evidence: Evidence, hold_id: int, body: ReasonIn
) -> dict[str, Any]:
    """Renew a preservation-request hold for another 90 days."""
    return evidence.renew_hold(hold_id, actor=actor(request), reason=body.reason).to_dict()


@router.post("/v1/evidence/holds/{hold_id}/release", **roles(Role.LE_LIAISON))
def release_hold(
    request: Request, evidence: Evidence, hold_id: int, body: ReasonIn
) -> dict[str, Any]:
    """Release a hold early."""
    return evidence.release_hold(hold_id, actor=actor(request), reason=body.reason).to_dict()
