"""Law-enforcement request routes (role ``le_liaison``): intake, workflow, SLA, export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from safestream.api.custody import actor, evidence_store, request_service
from safestream.api.deps import roles
from safestream.auth import Role
from safestream.evidence.errors import EvidenceStorageError
from safestream.requests.model import NewRequest, RequestType, Status, Verification
from safestream.requests.package import build_package, signing_key_from_env
from safestream.requests.service import RequestService

router = APIRouter(tags=["requests"])
Service = Annotated[RequestService, Depends(request_service)]


class OfficerIn(BaseModel):
    """The requesting officer; a name and at least one way to reach them."""

    name: str = Field(min_length=1, max_length=300)
    email: str | None = Field(default=None, max_length=300)
    phone: str | None = Field(default=None, max_length=100)
    badge: str | None = Field(default=None, max_length=100)


class RequestIn(BaseModel):
    """A law-enforcement request as received."""

    type: RequestType
    agency: str = Field(min_length=1, max_length=300)
    officer: OfficerIn
    legal_basis: str = Field(min_length=1, max_length=5000)
    jurisdiction: str = Field(min_length=1, max_length=64)
    identifiers: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=1000
    )
    data_categories: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=100
    )
    received_at: AwareDatetime
    non_disclosure: bool = False
    verification: Verification = Verification.UNVERIFIED
    reference: str = Field(default="", max_length=200)
    preset: str | None = Field(default=None, max_length=64)
    emergency: bool | None = None


class StatusIn(BaseModel):
    """A move along the workflow."""

    status: Status
    reason: str | None = Field(default=None, max_length=5000)
    verification: Verification | None = None


class NondisclosureIn(BaseModel):
    """Set or clear a request's non-disclosure order; clearing needs a reason."""

    non_disclosure: bool
    reason: str | None = Field(default=None, max_length=5000)


class ExportIn(BaseModel):
    """Why a response package is built."""

    reason: str = Field(min_length=3, max_length=5000)


@router.post("/v1/requests", status_code=201, **roles(Role.LE_LIAISON))
def create_request(request: Request, service: Service, body: RequestIn) -> dict[str, Any]:
    """Record a request; its deadline follows the jurisdiction's minimum standard."""
    new = NewRequest(
        request_type=body.type,
        agency=body.agency,
        officer=body.officer.model_dump(exclude_none=True),
        legal_basis=body.legal_basis,
        jurisdiction=body.jurisdiction,
        identifiers=body.identifiers,
        data_categories=body.data_categories,
        received_at=body.received_at,
        non_disclosure=body.non_disclosure,
        verification=body.verification,
        reference=body.reference,
        preset=body.preset,
        emergency=body.emergency,
    )
    return service.create(new, actor=actor(request)).to_dict(service.clock())


@router.get("/v1/requests", **roles(Role.LE_LIAISON))
def list_requests(
    service: Service,
    open_only: Annotated[bool, Query(alias="open")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Requests, soonest deadline first."""
    now = service.clock()
    items = service.list_requests(open_only=open_only, limit=limit)
    return {"requests": [r.to_dict(now) for r in items]}


@router.get("/v1/requests/sla", **roles(Role.LE_LIAISON))
def sla(service: Service) -> dict[str, Any]:
    """Open requests by time left, share answered within deadline, median time to respond."""
    return service.sla()


@router.post("/v1/requests/escalate", **roles(Role.LE_LIAISON))
def escalate(service: Service) -> dict[str, Any]:
    """Fire due escalations now (also run by ``safestream requests escalate`` from cron)."""
    return {"fired": service.escalate_due()}


@router.get("/v1/requests/{request_id}", **roles(Role.LE_LIAISON))
def get_request(service: Service, request_id: int) -> dict[str, Any]:
    """One request with the time left to its deadline."""
    return service.get(request_id).to_dict(service.clock())


@router.post("/v1/requests/{request_id}/status", **roles(Role.LE_LIAISON))
def change_status(
    request: Request, service: Service, request_id: int, body: StatusIn
) -> dict[str, Any]:
    """Move a request along received -> verified -> in_progress -> responded / rejected."""
    updated = service.transition(
        request_id,
        body.status,
        actor=actor(request),
        reason=body.reason,
        verification=body.verification,
    )
    return updated.to_dict(service.clock())


@router.post("/v1/requests/{request_id}/nondisclosure", **roles(Role.LE_LIAISON))
def change_nondisclosure(
    request: Request, service: Service, request_id: int, body: NondisclosureIn
) -> dict[str, Any]:
    """Set or clear the non-disclosure flag (audited); clearing without a reason is a 400."""
    updated = service.set_nondisclosure(
        request_id, body.non_disclosure, actor=actor(request), reason=body.reason
    )
    return updated.to_dict(service.clock())


@router.post(
    "/v1/requests/{request_id}/export",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
    **roles(Role.LE_LIAISON),
)
async def export(request: Request, service: Service, request_id: int, body: ExportIn) -> Response:
    """The signed response package (ZIP: data, manifest of SHA-256, Ed25519 signature)."""
    who = actor(request)
    service.get(request_id)  # 404 before touching keys
    evidence = evidence_store(request)

    def build() -> bytes:
        key = signing_key_from_env()
        return build_package(service, evidence, request_id, key, actor=who, reason=body.reason)

    try:
        data = await run_in_threadpool(build)
    except EvidenceStorageError as exc:
        return JSONResponse({"detail": str(exc), "kind": "evidence_storage"}, status_code=503)
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="request-{request_id}.zip"',
            "Cache-Control": "no-store",
        },
    )
