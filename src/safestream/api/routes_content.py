"""Content routes: check an upload, hash a file, look up hashes, read a check record."""

from __future__ import annotations

import dataclasses
import functools
import io
import ipaddress
import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image

from safestream.actions.finish import CheckSinks, finish_check
from safestream.api.deps import ServiceState, roles, state
from safestream.api.routes_jobs import job_out
from safestream.api.schemas import (
    CheckOut,
    JobOut,
    LookupIn,
    LookupOut,
    LookupResult,
    Problem,
    Surface,
    ValidationProblem,
    VideoCheckAccepted,
    VideoCheckOut,
)
from safestream.auth import Role
from safestream.classify import CategoryScores, Classification, assess, obscure
from safestream.classify.obscure import Box
from safestream.classify.video import FrameScorer, TemporalRule, VideoClassification
from safestream.engine.verdict import ContentContext
from safestream.engine.video import check_video
from safestream.errors import InputError, NotAnImageError, SignalValueError, error_kind
from safestream.jobs import video_check
from safestream.jobs.video_check import finish_video_check, save_upload
from safestream.signals.hashing import hash_bytes
from safestream.signals.image import decode_rgb
from safestream.signals.video import (
    DEFAULT_MAX_FRAME_PIXELS,
    SNIFF_BYTES,
    NoVideoStreamError,
    VideoError,
    VideoHashes,
    VideoProbe,
    VideoTooLargeError,
    VideoTooLongError,
    hash_video,
    probe_or_none,
    probe_video,
    sniff_video,
)
from safestream.store.jobs import JobRepository

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
    response_model=CheckOut | VideoCheckOut,
    summary="Check an uploaded image or video against every enabled bank",
    responses={
        200: {
            "description": "The verdict: an image's (CheckOut), or a short video's "
            "(VideoCheckOut: kind 'video', per-frame matches with timestamps, banked videos)"
        },
        202: {
            "model": VideoCheckAccepted,
            "description": "A video longer than SAFESTREAM_VIDEO_SYNC_MAX_S (or of unknown "
            "duration): queued as a video_check job; GET the Location (/v1/jobs/{id}) for "
            "the verdict, the VideoCheckOut body in the job's result",
        },
        413: {
            "model": Problem,
            "description": "Body over the upload limit, an image over the pixel limit, or "
            "a video whose frames are over it (kind video_too_large)",
        },
        422: {
            "model": Problem | ValidationProblem,
            "description": "Neither an image nor a video (not_an_image), a corrupt or "
            "truncated image or video, or a container with no video stream",
        },
    },
    **roles(Role.INTEGRATOR),
)
async def check(
    request: Request,
    st: State,
    file: Annotated[UploadFile, File(description="the image or video")],
    account_id: Annotated[str | None, Form(max_length=200)] = None,
    username: Annotated[str | None, Form(max_length=200)] = None,
    profile_url: Annotated[str | None, Form(max_length=2048)] = None,
    ip_address: Annotated[str | None, Form(max_length=64)] = None,
    source_port: Annotated[int | None, Form(ge=0, le=65535)] = None,
    client_timestamp: Annotated[datetime | None, Form()] = None,
    surface: Annotated[Surface | None, Form()] = None,
) -> Any:
    """Hash the upload, match it, apply the policy, record the check.

    The image itself is not stored; the record keeps hashes, context and verdict.
    Videos are told apart by content. A video of at most ``SAFESTREAM_VIDEO_SYNC_MAX_S``
    seconds (default 60) is checked here: file digests, every sampled frame (1 a
    second) against image banks, and banked videos; the answer adds ``frame_matches``
    (with timestamps) and ``videos``. A longer one, or one whose header gives no
    duration, is answered **202** with a ``video_check`` job (``Location:
    /v1/jobs/{id}``); its bytes wait in the upload folder until the job has run, and
    the job's result is the same body. Without a running worker the job waits queued.
    Both record the check and run the policy's actions as image checks do. With
    classifiers configured, a video's sampled frames are classified too: ``scores``
    holds each category's highest frame score (the policy's score rules apply as for
    an image), ``classifications`` the frames over ``SAFESTREAM_VIDEO_SCORE_THRESHOLD``
    and ``classification_summary`` the temporal rule's result.
    """
    ctx = _context(
        account_id, username, profile_url, ip_address, source_port, client_timestamp, surface
    )
    data = await _read_upload(file, st.settings.max_upload_bytes)
    from starlette.concurrency import run_in_threadpool

    api_key = getattr(request.state, "api_key", None)
    if sniff_video(data[:SNIFF_BYTES]):
        return await _check_video(st, data, ctx, api_key.id if api_key else None)
    try:
        verdict = await run_in_threadpool(st.engine.check_bytes, data, ctx)
    except NotAnImageError:
        # No known signature: FFmpeg may still read it (formats without magic bytes).
        probe = await run_in_threadpool(probe_or_none, data, "the upload")
        if probe is None:
            raise NotAnImageError(
                "the upload is neither an image nor a video we can read (detected by "
                "content, not by file name); send a JPEG, PNG, GIF, WebP, TIFF or BMP "
                "image, or an MP4, MOV, MKV, WebM, AVI or MPEG-TS video"
            ) from None
        return await _check_video(st, data, ctx, api_key.id if api_key else None)
    classifications: list[dict[str, Any]] = []
    if st.classifiers:
        results_c, scores = await run_in_threadpool(_classify, st, data)
        verdict = dataclasses.replace(verdict, scores=scores)
        classifications = [c.to_dict() for c in results_c]
        for c in results_c:
            for category in sorted(c.flagged):
                st.metrics.flagged.labels(category).inc()
    finished = await run_in_threadpool(
        functools.partial(
            finish_check,
            verdict,
            verdict.to_dict(),
            CheckSinks(st.checks, st.policy, st.actions),
            content_id=str(uuid.uuid4()),
            context=ctx,
            api_key_id=api_key.id if api_key else None,
        )
    )
    st.metrics.verdicts.labels(verdict.outcome).inc()
    for m in verdict.matches:
        st.metrics.matches.labels(m.bank, m.signal_type).inc()
    return {**finished, "classifications": classifications}


def _problem(exc: VideoError) -> JSONResponse:
    status = 413 if isinstance(exc, VideoTooLargeError) else 422
    return JSONResponse({"detail": str(exc), "kind": error_kind(exc)}, status_code=status)


async def _check_video(
    st: ServiceState, data: bytes, ctx: ContentContext, api_key_id: int | None
) -> JSONResponse:
    """A video upload: checked here when short, else queued (202); errors 413/422."""
    from starlette.concurrency import run_in_threadpool

    limit = st.settings.max_pixels or DEFAULT_MAX_FRAME_PIXELS
    sync_max = st.settings.video_sync_max_s
    try:
        probe = await run_in_threadpool(probe_video, data, name="the uploaded video")
        if not probe.has_video:
            raise NoVideoStreamError(
                "the upload is a media container with no video stream (audio or data "
                "only); send a video or an image"
            )
        if probe.width * probe.height > limit:
            raise VideoTooLargeError(
                f"the video's frames are {probe.width}x{probe.height} = "
                f"{probe.width * probe.height:,} pixels, over the limit of {limit:,}; "
                "refuse it, or raise SAFESTREAM_MAX_PIXELS if the source is trusted"
            )
        # Every video stream is decoded: a file of several streams costs that many passes.
        if probe.duration_s is not None and probe.duration_s * probe.video_streams <= sync_max:
            # One decode: each sampled frame is hashed and, with classifiers, scored.
            scorer = (
                FrameScorer(
                    st.classifiers,
                    rule=_video_rule(st),
                    max_frames=st.settings.video_classify_max_frames,
                )
                if st.classifiers
                else None
            )
            try:
                hashes = await run_in_threadpool(
                    functools.partial(
                        hash_video,
                        data,
                        max_frame_pixels=limit,
                        name="the uploaded video",
                        # The header may understate the length: never decode for long here.
                        max_duration_s=sync_max + 1.0,
                        on_sample=scorer,
                        on_extra=scorer.extra if scorer else None,
                    )
                )
            except VideoTooLongError:
                pass  # longer than its header said: the job path below
            else:
                classified = scorer.result(hashes.frames_sampled) if scorer else None
                return await _finish_sync(st, hashes, ctx, api_key_id, classified)
    except VideoError as exc:
        return _problem(exc)
    return await run_in_threadpool(_enqueue_video, st, data, ctx, api_key_id, probe, limit)


async def _finish_sync(
    st: ServiceState,
    hashes: VideoHashes,
    ctx: ContentContext,
    api_key_id: int | None,
    classified: VideoClassification | None = None,
) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    checked = await run_in_threadpool(check_video, st.engine, hashes, ctx)
    body = await run_in_threadpool(
        functools.partial(
            finish_video_check,
            checked,
            CheckSinks(st.checks, st.policy, st.actions),
            content_id=str(uuid.uuid4()),
            context=ctx,
            api_key_id=api_key_id,
            classified=classified,
        )
    )
    if classified is not None:
        for category in classified.flagged_categories:
            st.metrics.flagged.labels(category).inc()
    st.metrics.verdicts.labels(checked.verdict.outcome).inc()
    for m in checked.verdict.matches:
        st.metrics.matches.labels(m.bank, m.signal_type).inc()
    out = VideoCheckOut.model_validate(body)
    return JSONResponse(out.model_dump(mode="json"))


def _enqueue_video(
    st: ServiceState,
    data: bytes,
    ctx: ContentContext,
    api_key_id: int | None,
    probe: VideoProbe,
    max_frame_pixels: int,
) -> JSONResponse:
    content_id = str(uuid.uuid4())
    path = save_upload(video_check.upload_dir(st.store), content_id, data)
    payload = {
        "path": str(path),
        "content_id": content_id,
        "context": video_check.context_payload(ctx),
        "api_key_id": api_key_id,
        "received_at": datetime.now(UTC).isoformat(),
        "sample_fps": 1.0,
        "max_frame_pixels": max_frame_pixels,
        # The worker loads these classifiers itself (None: no classifier configured).
        "classify": video_check.classify_payload(
            st.settings.classifiers if st.classifiers else (),
            _video_rule(st),
            st.settings.video_classify_max_frames,
            # One sample a second over the header's duration (an estimate; more is fine).
            math.ceil(probe.duration_s) + 1 if probe.duration_s is not None else None,
        ),
    }
    try:
        job, created = JobRepository(st.store).enqueue(
            video_check.JOB_KIND, payload, max_attempts=video_check.MAX_ATTEMPTS
        )
    except BaseException:
        path.unlink(missing_ok=True)  # no job will ever delete it
        raise
    location = f"/v1/jobs/{job.id}"
    body = VideoCheckAccepted(
        job=JobOut(**job_out(job)),
        created=created,
        location=location,
        content_id=content_id,
        duration_s=probe.duration_s,
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=202, headers={"Location": location}
    )


def _classify(st: ServiceState, data: bytes) -> tuple[list[Classification], CategoryScores]:
    # Decoded a second time (the engine decoded for hashing): simple and still
    # far below the classifier's own cost; share the decode if profiles say so.
    _, rgb = decode_rgb(data, max_pixels=st.settings.max_pixels)
    return assess(st.classifiers, rgb)


def _video_rule(st: ServiceState) -> TemporalRule:
    return TemporalRule(
        window=st.settings.video_classify_window,
        min_flagged=st.settings.video_classify_min_flagged,
        score_threshold=st.settings.video_score_threshold,
    )


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
