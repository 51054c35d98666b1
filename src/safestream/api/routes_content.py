"""Content routes: check an upload, hash a file, look up hashes, read a check record."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile
from PIL import Image

from safestream.actions.base import ActionEvent
from safestream.api.deps import ServiceState, roles, state
from safestream.api.schemas import CheckOut, LookupIn, LookupOut, LookupResult, Surface
from safestream.auth import Role
from safestream.classify import CategoryScores, Classification, assess, obscure
from safestream.classify.obscure import Box
from safestream.engine.verdict import ContentContext
from safestream.errors import InputError, SignalValueError
from safestream.signals.hashing import hash_bytes
from safestream.signals.image import decode_rgb

router = APIRouter(prefix="/v1", tags=["content"])

State = Annotated[ServiceState, Depends(state)]


async def _read_upload(file: UploadFile, limit: int) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"upload is larger than the limit of {limit} bytes")
    return data


def _context(
    account_id: str | None,
    username: str | None,
    profile_url: str | None,
    ip_address: str | None,
    source_port: int | None,
    client_timestamp: datetime | None,
    surface: str | None,
) -> ContentContext:
    if ip_address is not None:
        try:
            ip_address = str(ipaddress.ip_address(ip_address.strip()))
        except ValueError:
            raise InputError(
                f"ip_address {ip_address[:64]!r} is not an IPv4 or IPv6 address"
            ) from None
    if client_timestamp is not None and client_timestamp.tzinfo is None:
        raise InputError(
            "client_timestamp must include a time zone (e.g. 2026-11-29T10:00:00Z): "
            "a naive time is ambiguous for investigators"
        )
    return ContentContext(
        account_id=account_id,
        username=username,
        profile_url=profile_url,
        ip_address=ip_address,
        source_port=source_port,
        client_timestamp=client_timestamp,
        surface=surface,
    )


@router.post(
    "/check",
    response_model=CheckOut,
    summary="Check an uploaded image against every enabled bank",
    **roles(Role.INTEGRATOR),
)
async def check(
    request: Request,
    st: State,
    file: Annotated[UploadFile, File(description="the image")],
    account_id: Annotated[str | None, Form(max_length=200)] = None,
    username: Annotated[str | None, Form(max_length=200)] = None,
    profile_url: Annotated[str | None, Form(max_length=2048)] = None,
    ip_address: Annotated[str | None, Form(max_length=64)] = None,
    source_port: Annotated[int | None, Form(ge=0, le=65535)] = None,
    client_timestamp: Annotated[datetime | None, Form()] = None,
    surface: Annotated[Surface | None, Form()] = None,
) -> dict[str, Any]:
    """Hash the upload, match it, apply the policy, record the check.

    The image itself is not stored; the record keeps hashes, context and verdict.
    """
    ctx = _context(
        account_id, username, profile_url, ip_address, source_port, client_timestamp, surface
    )
    data = await _read_upload(file, st.settings.max_upload_bytes)
    from starlette.concurrency import run_in_threadpool

    verdict = await run_in_threadpool(st.engine.check_bytes, data, ctx)
    classifications: list[dict[str, Any]] = []
    if st.classifiers:
        results_c, scores = await run_in_threadpool(_classify, st, data)
        verdict = dataclasses.replace(verdict, scores=scores)
        classifications = [c.to_dict() for c in results_c]
        for c in results_c:
            for category in sorted(c.flagged):
                st.metrics.flagged.labels(category).inc()
    decision = st.policy.decide(verdict, surface)
    content_id = str(uuid.uuid4())
    body = verdict.to_dict()
    api_key = getattr(request.state, "api_key", None)
    await run_in_threadpool(
        st.checks.record,
        content_id=content_id,
        account_id=ctx.account_id,
        username=ctx.username,
        profile_url=ctx.profile_url,
        ip_address=ctx.ip_address,
        source_port=ctx.source_port,
        client_timestamp=ctx.client_timestamp,
        surface=ctx.surface,
        api_key_id=api_key.id if api_key else None,
        outcome=verdict.outcome,
        signals=body["signals"],
        matches=body["matches"],
        reasons=body["reasons"],
        scores=verdict.scores,
    )
    st.metrics.verdicts.labels(verdict.outcome).inc()
    for m in verdict.matches:
        st.metrics.matches.labels(m.bank, m.signal_type).inc()
    # block is the response itself; enqueue_review writes its item now; webhook
    # only enqueues a job (no network call inside a request).
    event = ActionEvent(
        content_id=content_id,
        received_at=datetime.now(UTC),
        verdict=decision.verdict,
        outcome=verdict.outcome,
        rule=decision.rule,
        matches=body["matches"],
        context={
            **ctx.to_dict(),
            # Investigators get UTC everywhere (the record keeps the same instant).
            "client_timestamp": (
                ctx.client_timestamp.astimezone(UTC).isoformat() if ctx.client_timestamp else None
            ),
        },
        flood_window_s=st.policy.flood_window_s,
    )
    results = (
        await run_in_threadpool(st.actions.run, decision.actions, event) if decision.actions else []
    )
    return {
        "content_id": content_id,
        "verdict": decision.verdict,
        "outcome": verdict.outcome,
        "actions": [r.action for r in results if r.status in ("done", "queued")],
        "action_results": [r.to_dict() for r in results],
        "matches": body["matches"],
        "suppressed": body["suppressed"],
        "reasons": body["reasons"] + ([f"policy rule {decision.rule!r}"] if decision.rule else []),
        "signals": body["signals"],
        "scores": verdict.scores,
        "classifications": classifications,
    }


def _classify(st: ServiceState, data: bytes) -> tuple[list[Classification], CategoryScores]:
    # Decoded a second time (the engine decoded for hashing): simple and still
    # far below the classifier's own cost; share the decode if profiles say so.
    _, rgb = decode_rgb(data, max_pixels=st.settings.max_pixels)
    return assess(st.classifiers, rgb)


@router.post(
    "/obscure",
    summary="Return an irreversibly obscured copy of an uploaded image (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    **roles(Role.INTEGRATOR),
)
async def obscure_upload(
    st: State,
    file: Annotated[UploadFile, File(description="the image")],
    method: Annotated[str, Form(pattern="^(pixelate|blur|black)$")] = "pixelate",
    warning: Annotated[str | None, Form(max_length=200)] = None,
    whole: Annotated[bool, Form(description="obscure the whole frame")] = False,
) -> Response:
    """Obscure what the configured classifiers flag (their boxes, or the whole frame).

    With no classifier configured, or with ``whole``, the whole frame is obscured.
    Nothing is stored.
    """
    data = await _read_upload(file, st.settings.max_upload_bytes)
    from starlette.concurrency import run_in_threadpool

    png = await run_in_threadpool(_obscure_png, st, data, method, warning, whole)
    return Response(png, media_type="image/png")


def _obscure_png(
    st: ServiceState, data: bytes, method: str, warning: str | None, whole: bool
) -> bytes:
    _, rgb = decode_rgb(data, max_pixels=st.settings.max_pixels)
    boxes: list[Box] | None = None
    if st.classifiers and not whole:
        results, _ = assess(st.classifiers, rgb)
        boxes = []
        for result in results:
            if not result.flagged:
                continue
            flagged = [d.box for d in result.detections if d.category in result.flagged]
            if not flagged:  # a whole-image score: hide it all
                boxes = None
                break
            boxes.extend(flagged)
    out = obscure(rgb, method, boxes, warning=warning)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(out)).save(buf, format="PNG")
    return buf.getvalue()


@router.post(
    "/hash",
    summary="Hash an uploaded image; nothing is stored",
    **roles(Role.INTEGRATOR, Role.CURATOR),
)
async def hash_upload(
    st: State,
    file: Annotated[UploadFile, File(description="the image")],
    mode: Annotated[str, Form(pattern="^(exact|fast)$")] = "exact",
    dihedral: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """PDQ (with quality) and MD5/SHA-1/SHA-256 of the upload."""
    data = await _read_upload(file, st.settings.max_upload_bytes)
    from starlette.concurrency import run_in_threadpool

    hashes = await run_in_threadpool(
        hash_bytes, data, mode=mode, dihedral=dihedral, max_pixels=st.settings.max_pixels
    )
    return hashes.to_dict()


@router.post(
    "/lookup",
    response_model=LookupOut,
    summary="Look up hashes of any signal type in every enabled bank",
    **roles(Role.INTEGRATOR),
)
async def lookup(body: LookupIn, st: State) -> dict[str, Any]:
    """Matches per hash, in request order; each bank's threshold applies unless ``radius``."""
    if len(body.hashes) > st.settings.max_lookup_hashes:
        raise InputError(
            f"at most {st.settings.max_lookup_hashes} hashes per lookup, got {len(body.hashes)}"
        )
    # The index search is in memory and takes microseconds: it runs on the event
    # loop. Only hits need the database (entry details), in the thread pool.
    from starlette.concurrency import run_in_threadpool

    results: list[LookupResult] = []
    for i, h in enumerate(body.hashes):
        try:
            hits = st.engine.lookup_hits(h.signal_type, h.value, radius=body.radius)
        except SignalValueError as exc:
            raise SignalValueError(f"hashes[{i}]: {exc}") from None
        matches = (
            await run_in_threadpool(st.engine.resolve, hits, radius=body.radius) if hits else []
        )
        results.append(
            LookupResult.model_validate(
                {
                    "signal_type": h.signal_type.lower(),
                    "value": h.value.strip().lower(),
                    "matches": [m.to_dict() for m in matches],
                }
            )
        )
    return {"results": results}


@router.get(
    "/checks/{content_id}",
    summary="The stored record of a check",
    **roles(Role.INTEGRATOR, Role.REVIEWER, Role.AUDITOR),
)
def get_check(content_id: str, st: State) -> dict[str, Any]:
    """Hashes, context, outcome and matches of a past check."""
    return st.checks.get(content_id)
