"""On-device protection: the signed filter and batched blinded OPRF evaluation.

Role: ``integrator`` (and ``admin``).  A device uses an integrator key issued to
its app installation; the rate limit is per key, so give each installation (or
each user) its own key when the limit should bind per device.  No new role: a key
that may check content on the server may also help a device check it locally.

Nothing derived from a request's content is logged or stored: the body holds
only blinded elements, and only their count is logged (at DEBUG).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from safestream.api.deps import roles
from safestream.auth import Role
from safestream.device.oprf import ELEMENT_BYTES
from safestream.device.server import MAX_BATCH, DeviceServer, RateLimitedError
from safestream.errors import InputError

router = APIRouter(prefix="/v1/device", tags=["device"])

#: Base64 of MAX_BATCH elements, rounded up.
_MAX_B64 = 4 * ((MAX_BATCH * ELEMENT_BYTES + 2) // 3)


def device_server(request: Request) -> DeviceServer:
    """The process's DeviceServer: ``app.state.device_server``, else one over the data dir."""
    server = getattr(request.app.state, "device_server", None)
    if server is None:
        server = DeviceServer.default()
        request.app.state.device_server = server
    assert isinstance(server, DeviceServer)
    return server


class EvaluateRequest(BaseModel):
    """Blinded elements, 32 bytes each, concatenated and base64-encoded."""

    blinded: str = Field(min_length=1, max_length=_MAX_B64)


class EvaluateResponse(BaseModel):
    """Evaluated elements in the same order, and the OPRF key that produced them."""

    evaluated: str
    oprf_key_id: str
    count: int


@router.get(
    "/filter",
    summary="The signed device filter (binary); signature and version in headers",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 304: {}},
    **roles(Role.INTEGRATOR),
)
async def get_filter(
    request: Request, if_none_match: Annotated[str | None, Header()] = None
) -> Response:
    """The current filter file; ``X-Filter-Signature`` is its Ed25519 signature (hex)."""
    server = device_server(request)
    published = await run_in_threadpool(server.current)
    etag = f'"{published.signed.sha256}"'
    headers = {
        "ETag": etag,
        "X-Filter-Version": str(published.version),
        "X-Filter-Signature": published.signed.signature.hex(),
        "X-Filter-SHA256": published.signed.sha256,
        "X-OPRF-Key-Id": published.oprf_key_id,
        "Cache-Control": "no-cache",
    }
    if if_none_match == etag:
        return Response(status_code=304, headers=headers)
    return Response(published.signed.data, media_type="application/octet-stream", headers=headers)


@router.get(
    "/filter/info",
    summary="Version, SHA-256, signature and public key of the current filter",
    **roles(Role.INTEGRATOR),
)
async def filter_info(request: Request) -> dict[str, Any]:
    """Metadata only (compare ``sha256`` across devices to detect a targeted filter)."""
    published = await run_in_threadpool(device_server(request).current)
    return published.info()


@router.post(
    "/evaluate",
    summary="Evaluate blinded elements with the server's OPRF key (rate-limited per key)",
    response_model=EvaluateResponse,
    responses={429: {"description": "rate limit reached; see Retry-After"}},
    **roles(Role.INTEGRATOR),
)
def evaluate(body: EvaluateRequest, request: Request) -> EvaluateResponse:
    """BlindEvaluate each element (RFC 9497, ristretto255-SHA512, mode 0x00)."""
    try:
        raw = base64.b64decode(body.blinded, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("'blinded' must be base64") from None
    if not raw or len(raw) % ELEMENT_BYTES:
        raise InputError(f"'blinded' must decode to a multiple of {ELEMENT_BYTES} bytes")
    elements = [raw[i : i + ELEMENT_BYTES] for i in range(0, len(raw), ELEMENT_BYTES)]
    server = device_server(request)
    api_key = getattr(request.state, "api_key", None)
    device = f"key:{api_key.id}" if api_key is not None else "anonymous"
    try:
        evaluated = server.evaluate(elements, device=device)
    except RateLimitedError as exc:
        raise HTTPException(
            429, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after_s)))}
        ) from None
    return EvaluateResponse(
        evaluated=base64.b64encode(b"".join(evaluated)).decode(),
        oprf_key_id=server.oprf_key_id(),
        count=len(evaluated),
    )
