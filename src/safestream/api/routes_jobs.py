"""Background-job routes: job status, and batch scans run by ``safestream worker``.

Bank imports are queued by ``POST /v1/banks/{name}/import?async=true``
(routes_banks); scans by ``POST /v1/scans``. Both answer 202 with the job and
``Location: /v1/jobs/{id}``. A key sees the jobs of its area only: curators
bank imports, integrators batch scans, admins everything; another area's job
is answered 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from safestream.api.deps import ServiceState, roles, state
from safestream.api.schemas import (
    JobAccepted,
    JobOut,
    JobsPage,
    ScanIn,
    ScanResultsPage,
    ScanStatusOut,
)
from safestream.auth import Role
from safestream.errors import NotFoundError
from safestream.jobs import bank_import, batch_scan, report_submit, video_check
from safestream.jobs.batch_scan import (
    CONTEXT_FIELDS,
    ScanPathError,
    resolve_scan_path,
    scan_context,
    scan_roots,
)
from safestream.store.jobs import Job, JobRepository
from safestream.store.scans import ScanResultRepository
from safestream.store.service import ApiKey

router = APIRouter(tags=["jobs"])
State = Annotated[ServiceState, Depends(state)]
JobStatus = Literal["queued", "running", "done", "dead"]

#: Which non-admin roles may see jobs of each kind.
KIND_ROLES: dict[str, frozenset[Role]] = {
    bank_import.JOB_KIND: frozenset({Role.CURATOR}),
    batch_scan.JOB_KIND: frozenset({Role.INTEGRATOR}),
    # Integrators submit long videos to /v1/check and read the verdict here.
    video_check.JOB_KIND: frozenset({Role.INTEGRATOR}),
    # Liaisons queue CyberTipline submissions and follow them here.
    report_submit.JOB_KIND: frozenset({Role.LE_LIAISON}),
}


def _key(request: Request) -> ApiKey:
    key = request.state.api_key
    assert isinstance(key, ApiKey)
    return key


def visible_kinds(role: Role) -> tuple[str, ...] | None:
    """Job kinds a role may see (None: every kind, for admins)."""
    if role == Role.ADMIN:
        return None
    return tuple(sorted(kind for kind, allowed in KIND_ROLES.items() if role in allowed))


def job_out(job: Job) -> dict[str, Any]:
    """The API view of a job (never its payload)."""
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "run_after": job.run_after,
        "lease_expires_at": job.lease_expires_at,
        "last_error": job.last_error,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "result": job.result,
    }


def accepted(job: Job, created: bool) -> JSONResponse:
    """202 with the job and ``Location: /v1/jobs/{id}``."""
    location = f"/v1/jobs/{job.id}"
    body = JobAccepted(job=JobOut(**job_out(job)), created=created, location=location)
    return JSONResponse(
        body.model_dump(mode="json"), status_code=202, headers={"Location": location}
    )


def _visible_job(st: ServiceState, key: ApiKey, job_id: int, kind: str | None = None) -> Job:
    job = JobRepository(st.store).get(job_id)
    kinds = visible_kinds(key.role)
    if (kinds is not None and job.kind not in kinds) or (kind is not None and job.kind != kind):
        raise NotFoundError(f"no job with id {job_id}")
    return job


class ScanJobIn(ScanIn):
    """A batch scan, optionally naming whose stored media it is (carried into cases)."""

    account_id: str | None = Field(
        default=None, min_length=1, max_length=CONTEXT_FIELDS["account_id"]
    )
    username: str | None = Field(default=None, min_length=1, max_length=CONTEXT_FIELDS["username"])
    profile_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=CONTEXT_FIELDS["profile_url"],
        examples=["https://example.com/u/alice"],
    )


READ = roles(Role.CURATOR, Role.INTEGRATOR, Role.LE_LIAISON)
SCAN = roles(Role.INTEGRATOR)


@router.get("/v1/jobs", response_model=JobsPage, summary="List background jobs", **READ)
def list_jobs(
    request: Request,
    st: State,
    status: Annotated[JobStatus | None, Query()] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Jobs of the key's area, newest first, optionally of one status."""
    kinds = visible_kinds(_key(request).role)
    jobs = JobRepository(st.store).recent(status, limit, kinds=kinds, before_id=before_id)
    return {
        "jobs": [job_out(j) for j in jobs],
        "next_before_id": jobs[-1].id if len(jobs) == limit else None,
    }


@router.get("/v1/jobs/{job_id}", response_model=JobOut, summary="Get a background job", **READ)
def get_job(job_id: int, request: Request, st: State) -> dict[str, Any]:
    """Status, attempts, last error and result (import counts, scan summary)."""
    return job_out(_visible_job(st, _key(request), job_id))


@router.post(
    "/v1/scans",
    status_code=202,
    response_model=JobAccepted,
    summary="Queue a batch scan of a folder on the server",
    **SCAN,
)
def create_scan(
    body: ScanJobIn,
    request: Request,
    st: State,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """The path must lie inside ``SAFESTREAM_SCAN_ROOTS`` after resolving symlinks.

    403 when scans are disabled (no roots) or the path is outside every root;
    400 when it does not exist or is not absolute. With an ``Idempotency-Key``
    header, a repeated request gives the same job. ``account_id``,
    ``username`` and ``profile_url`` name whose stored media is scanned: a
    file that matches becomes a check record (``surface="scan"``) with them,
    and so a case for that account.
    """
    try:
        real = resolve_scan_path(body.path, scan_roots())
    except ScanPathError as exc:
        raise HTTPException(403, str(exc)) from None
    context = scan_context(body.model_dump())
    key = _key(request)
    payload = {
        "path": str(real),
        "requested_path": body.path,
        "mode": body.mode,
        "dihedral": body.dihedral,
        "api_key_id": key.id,
        **{k: v for k, v in context.items() if v is not None},
    }
    ident = None
    if idempotency_key:
        parts = [key.id, idempotency_key, str(real), body.mode, body.dihedral, context]
        digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        ident = f"{batch_scan.JOB_KIND}:{digest}"
    job, created = JobRepository(st.store).enqueue(
        batch_scan.JOB_KIND,
        payload,
        idempotency_key=ident,
        max_attempts=batch_scan.MAX_ATTEMPTS,
    )
    return accepted(job, created)


@router.get(
    "/v1/scans/{job_id}",
    response_model=ScanStatusOut,
    summary="Status and counts of a batch scan",
    **SCAN,
)
def get_scan(job_id: int, request: Request, st: State) -> dict[str, Any]:
    """The scan's job and the files done so far, by outcome."""
    job = _visible_job(st, _key(request), job_id, batch_scan.JOB_KIND)
    counts = ScanResultRepository(st.store).counts(job.id)
    return {
        "job": job_out(job),
        "path": str(job.payload.get("path", "")),
        "files_done": sum(counts.values()),
        "outcomes": counts,
    }


@router.get(
    "/v1/scans/{job_id}/results",
    response_model=ScanResultsPage,
    summary="Per-file results of a batch scan (paged)",
    **SCAN,
)
def scan_results(
    job_id: int,
    request: Request,
    st: State,
    outcome: Annotated[Literal["match", "no_match", "suppressed", "error"] | None, Query()] = None,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Results in id order; ``outcome=match`` for the matches only."""
    job = _visible_job(st, _key(request), job_id, batch_scan.JOB_KIND)
    page = ScanResultRepository(st.store).page(
        job.id, outcome=outcome, after_id=after_id, limit=limit
    )
    return {
        "results": [r.to_dict() for r in page],
        "next_after_id": page[-1].id if len(page) == limit else None,
    }
