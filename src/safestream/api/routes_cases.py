"""Case and report routes: review (role ``reviewer``), reports (role ``le_liaison``).

The case service is built once per app from the environment and kept on
``app.state.safestream_cases``; tests may set it first (e.g. with a clock).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from safestream.api.custody import actor
from safestream.api.deps import _state, roles
from safestream.api.routes_jobs import accepted, job_out
from safestream.api.schemas import JobAccepted
from safestream.auth import Role
from safestream.cases.model import CaseConfig, CaseStatus
from safestream.cases.service import CaseService
from safestream.errors import error_kind
from safestream.jobs.report_submit import enqueue_submit, latest_job
from safestream.reports.build import BuildOptions, reporter_from_env
from safestream.reports.model import IncidentType, Reporter
from safestream.reports.service import ReportService, ReportValidationError
from safestream.reports.submission import (
    CybertipConfig,
    SubmissionService,
    no_client,
)
from safestream.reports.timeliness import report_stats
from safestream.store.jobs import JobRepository

router = APIRouter(tags=["cases"])


def case_service(request: Request) -> CaseService:
    """The app's case service."""
    app_state = request.app.state
    svc = getattr(app_state, "safestream_cases", None)
    if svc is None:
        svc = CaseService(_state(request).store, CaseConfig.from_env())
        app_state.safestream_cases = svc
    assert isinstance(svc, CaseService)
    return svc


Cases = Annotated[CaseService, Depends(case_service)]
#: Ids fit a signed 64-bit column; larger ones are a 422, not a database error.
CaseId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ReportId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class DecisionIn(BaseModel):
    """A reviewer's decision on a case."""

    status: Literal["in_review", "confirmed", "dismissed"]
    reason_code: str = Field(min_length=1, max_length=64)
    note: str = Field(default="", max_length=5000)
    #: On a dismissal: add the case's file hashes to this allow-list bank.
    allow_list_bank: str | None = Field(default=None, min_length=1, max_length=200)
    #: On a confirmation: add the case's SHA-256, MD5 and PDQ hashes to this bank.
    add_to_bank: str | None = Field(default=None, min_length=1, max_length=200)


class BuildIn(BaseModel):
    """What a person adds to a confirmed case to make a report."""

    reporter: Reporter | None = None
    platform: str | None = Field(default=None, max_length=200)
    incident_type: IncidentType = IncidentType.CHILD_PORNOGRAPHY
    chat_excerpt: str | None = Field(default=None, max_length=100_000)
    additional_info: str | None = Field(default=None, max_length=100_000)
    files_viewed_by_esp: bool | None = None
    publicly_available: bool | None = None


class SubmittedIn(BaseModel):
    """That a report was filed, with the hotline's reference."""

    reference: str = Field(min_length=1, max_length=200)
    override_reason: str | None = Field(default=None, min_length=3, max_length=5000)


@router.get("/v1/cases", **roles(Role.REVIEWER))
def list_cases(
    cases: Cases,
    status: Annotated[CaseStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Cases, most urgent first, each with its priority and reasons."""
    items = cases.list(status=status.value if status else None, limit=limit)
    return {"cases": [cases.to_dict(c, events=False) for c in items]}


@router.post("/v1/cases/sync", **roles(Role.REVIEWER))
def sync_cases(cases: Cases) -> dict[str, Any]:
    """Group new detections (check records) into cases now."""
    return {"added": cases.sync()}


@router.get("/v1/cases/{case_id}", **roles(Role.REVIEWER, Role.LE_LIAISON))
def get_case(cases: Cases, case_id: CaseId) -> dict[str, Any]:
    """One case with its detections (context, hashes, matches; never content)."""
    return cases.to_dict(cases.get(case_id))


@router.post("/v1/cases/{case_id}/decision", **roles(Role.REVIEWER))
def decide(request: Request, cases: Cases, case_id: CaseId, body: DecisionIn) -> dict[str, Any]:
    """Move a case (audited); 409 when the workflow does not allow the move."""
    case = cases.decide(
        case_id,
        body.status,
        reason_code=body.reason_code,
        note=body.note,
        actor=actor(request),
        allow_list_bank=body.allow_list_bank,
        add_to_bank=body.add_to_bank,
    )
    return cases.to_dict(case, events=False)


@router.post("/v1/cases/{case_id}/report", status_code=201, **roles(Role.LE_LIAISON))
def build(request: Request, cases: Cases, case_id: CaseId, body: BuildIn) -> dict[str, Any]:
    """Build a report of a confirmed case, with its quality findings."""
    options = BuildOptions(
        reporter=body.reporter or reporter_from_env(),
        platform=body.platform,
        incident_type=body.incident_type,
        chat_excerpt=body.chat_excerpt,
        additional_info=body.additional_info,
        files_viewed_by_esp=body.files_viewed_by_esp,
        publicly_available=body.publicly_available,
    )
    return ReportService(cases).build(case_id, options, actor=actor(request)).to_dict()


class SubmitIn(BaseModel):
    """A submission to the CyberTipline API."""

    override_reason: str | None = Field(default=None, min_length=3, max_length=5000)


def submissions(cases: CaseService) -> SubmissionService:
    """A submission service that reads state and logs (the worker talks to the hotline)."""
    return SubmissionService(ReportService(cases), no_client)


@router.get("/v1/reports/stats", **roles(Role.LE_LIAISON, Role.REVIEWER))
def stats(cases: Cases) -> dict[str, Any]:
    """Timeliness: per-stage medians (detected, reviewed, submitted, finished), share in 24 h."""
    return report_stats(cases.store)


@router.get("/v1/reports/{report_id}", **roles(Role.LE_LIAISON))
def get_report(cases: Cases, report_id: ReportId) -> dict[str, Any]:
    """A stored report with its quality findings."""
    return ReportService(cases).get(report_id).to_dict()


@router.patch(
    "/v1/reports/{report_id}",
    responses={
        200: {"description": "the edited report, its quality findings and the fields changed"},
        404: {"description": "no such report"},
        409: {"description": "the report is filed, or a submission of it is queued or running"},
        422: {"description": "the edited report does not fit the model (fields named)"},
    },
    **roles(Role.LE_LIAISON),
)
def edit_report(
    request: Request,
    cases: Cases,
    report_id: ReportId,
    patch: Annotated[
        dict[str, Any],
        Body(
            description="a JSON merge patch (RFC 7396) of the report model: objects merge, "
            "arrays and values replace, null removes"
        ),
    ],
) -> Any:
    """Complete or correct a stored report before submission (a JSON merge patch; audited).

    E.g. victims, verified emails and phones, device ids, the account's
    disabled date and whether the user was notified, intended recipients,
    livestream details, the chat excerpt, escalation, additional information.
    The patched report is validated against the model: 422 naming each field
    (unknown fields, wrong types, naive date-times, over-long values).
    Refused with 409 once the report is filed or while a submission of it is
    queued or running. The answer holds the recomputed quality findings and
    ``changed``, the top-level fields the edit changed.
    """
    try:
        stored, changed = ReportService(cases).amend(report_id, patch, actor=actor(request))
    except ReportValidationError as exc:
        return JSONResponse(
            {"detail": str(exc), "kind": error_kind(exc), "errors": exc.errors},
            status_code=422,
        )
    return stored.to_dict() | {"changed": changed}


@router.get(
    "/v1/reports/{report_id}/export",
    response_class=Response,
    responses={
        200: {
            "description": "the report (JSON, or CyberTipline-style XML)",
            "content": {"application/json": {}, "application/xml": {}},
        }
    },
    **roles(Role.LE_LIAISON),
)
def export_report(
    cases: Cases,
    report_id: ReportId,
    format: Annotated[Literal["json", "cybertipline"], Query()] = "json",
) -> Response:
    """The report as JSON or CyberTipline-style XML (modelled: validate against NCMEC's XSD)."""
    text = ReportService(cases).export(report_id, format)
    media = "application/json" if format == "json" else "application/xml"
    return Response(text, media_type=media)


@router.post("/v1/reports/{report_id}/submitted", **roles(Role.LE_LIAISON))
def submitted(
    request: Request, cases: Cases, report_id: ReportId, body: SubmittedIn
) -> dict[str, Any]:
    """Record that the report was filed; the case becomes ``reported`` (audited).

    Refused (409) while the report has blocking findings, unless a written
    ``override_reason`` is given.
    """
    return ReportService(cases).mark_submitted(
        report_id,
        actor=actor(request),
        reference=body.reference,
        override_reason=body.override_reason,
    )


@router.post(
    "/v1/reports/{report_id}/submit",
    status_code=202,
    response_model=JobAccepted,
    responses={
        202: {
            "description": (
                "queued as a report_submit job (or the report's queued or running job); "
                "follow the Location (/v1/jobs/{id}) or GET /v1/reports/{id}/submissions"
            )
        },
        400: {"description": "the CyberTipline API is not configured (SAFESTREAM_CYBERTIP_*)"},
        404: {"description": "no such report"},
        409: {
            "description": "blocking findings without an override, case not confirmed, "
            "or the report was already filed"
        },
    },
    **roles(Role.LE_LIAISON),
)
def submit(
    request: Request, cases: Cases, report_id: ReportId, body: SubmitIn | None = None
) -> JSONResponse:
    """Queue the filing of the report with the CyberTipline API (a ``report_submit`` job).

    Everything that can be checked without the hotline is checked first: 404
    for an unknown report; 409 while blocking findings remain without an
    ``override_reason``, when the case is not confirmed, or when the report was
    already filed; 400 when the API is not configured. Then 202 with the job
    and ``Location: /v1/jobs/{id}``; ``safestream worker`` runs the resumable
    flow, retrying transient failures with backoff. The job's ``result``
    holds ``remote_report_id`` once filed, or ``error`` and ``retryable``
    after a failed attempt; a refusal (bad credentials, a rejected document)
    dead-letters the job with the hotline's message, and submitting again
    after the fix queues a new job that resumes the submission. While a job of
    the report is queued or running, that job is returned (``created``
    false): never two jobs for one report.
    """
    CybertipConfig.from_env()  # a clear 400 now, not a dead job later
    svc = submissions(cases)
    reason = body.override_reason if body else None
    svc.preflight(report_id, override_reason=reason)
    job, created = enqueue_submit(
        cases.store, report_id, actor=actor(request), override_reason=reason
    )
    return accepted(job, created)


@router.get("/v1/reports/{report_id}/submissions", **roles(Role.LE_LIAISON))
def submission_log(request: Request, cases: Cases, report_id: ReportId) -> dict[str, Any]:
    """A report's submission state, its latest ``report_submit`` job and every exchange."""
    out = submissions(cases).submissions(report_id)
    job = latest_job(JobRepository(cases.store), report_id)
    out["job"] = job_out(job) if job is not None else None
    return out
