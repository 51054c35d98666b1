"""Reports over the store: build from a case, read, export, mark submitted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from safestream.cases.model import CaseStatus
from safestream.cases.service import CaseService
from safestream.errors import ConflictError, InputError
from safestream.reports.build import BuildOptions, build_report
from safestream.reports.cybertipline import export_xml
from safestream.reports.model import Report
from safestream.reports.quality import Finding, blocking, check_report

ExportFormat = Literal["json", "cybertipline"]

log = logging.getLogger(__name__)
#: How deep a merge patch may nest (the report model is far shallower).
MAX_PATCH_DEPTH = 32


class ReportValidationError(InputError):
    """A report (or an edit of one) does not fit the model; ``errors`` name each field."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.errors = errors


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "report"


def validation_error(prefix: str, exc: ValidationError) -> ReportValidationError:
    """A :class:`ReportValidationError` naming every field pydantic refused."""
    errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    problems = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return ReportValidationError(f"{prefix}: {problems}", errors)


def merge_patch(target: Any, patch: Any, *, depth: int = 0) -> Any:
    """``target`` with a JSON merge patch applied (RFC 7396): null removes, objects merge.

    Arrays and scalars replace the target's value; neither argument is changed.
    """
    if depth > MAX_PATCH_DEPTH:
        raise InputError(f"merge patch nested deeper than {MAX_PATCH_DEPTH} levels")
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value, depth=depth + 1)
    return out


@dataclass(frozen=True)
class StoredReport:
    """A report as stored, with its quality findings."""

    id: int
    case_id: int
    report: Report
    findings: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.id,
            "case_id": self.case_id,
            "report": self.report.model_dump(mode="json"),
            "findings": [f.to_dict() for f in self.findings],
            "blocking": len(blocking(self.findings)),
        }


def load_report(data: Any) -> Report:
    """Validate report JSON (a dict) into the model; InputError on bad input."""
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"invalid report: {exc}") from None


class ReportService:
    """Build reports from confirmed cases and export them."""

    def __init__(self, cases: CaseService) -> None:
        self.cases = cases
        self.repo = cases.repo

    def build(self, case_id: int, options: BuildOptions, *, actor: str) -> StoredReport:
        """Build, check and store a report of a confirmed case (audited)."""
        report = build_report(self.cases.get(case_id), options)
        report_id = self.repo.add_report(case_id, report.model_dump(mode="json"), actor=actor)
        return StoredReport(report_id, case_id, report, check_report(report))

    def get(self, report_id: int) -> StoredReport:
        """A stored report with its findings."""
        case_id, body = self.repo.get_report(report_id)
        report = load_report(body)
        return StoredReport(report_id, case_id, report, check_report(report))

    def amend(self, report_id: int, patch: Any, *, actor: str) -> tuple[StoredReport, list[str]]:
        """Apply a JSON merge patch to a stored report; (report with findings, fields changed).

        The patched report is validated against the model
        (:class:`ReportValidationError` naming the fields); ``case_id`` cannot
        change. Refused (ConflictError) once the report is filed, while it is
        being filed or a ``report_submit`` job of it is queued or running.
        Nothing is written on a refusal; the edit is audited (fields, never
        their contents).
        """
        if not isinstance(patch, dict):
            raise ReportValidationError(
                "a report edit is a JSON merge patch: a JSON object of the fields to change",
                [{"field": "report", "message": "not a JSON object"}],
            )
        from safestream.jobs.report_submit import latest_job
        from safestream.store.jobs import QUEUED, RUNNING, JobRepository

        job = latest_job(JobRepository(self.cases.store), report_id)
        if job is not None and job.status in (QUEUED, RUNNING):
            raise ConflictError(
                f"report {report_id} has a report_submit job ({job.id}, {job.status}); it "
                "cannot be edited while a submission is queued or running"
            )

        def apply(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
            if "case_id" in patch and patch["case_id"] != body.get("case_id"):
                raise ReportValidationError(
                    f"cannot edit report {report_id}: case_id: a report stays with its case",
                    [{"field": "case_id", "message": "a report stays with its case"}],
                )
            # The stored body as the model writes it now (fields added since get defaults).
            base = load_report(body).model_dump(mode="json")
            try:
                report = Report.model_validate(merge_patch(base, patch))
            except ValidationError as exc:
                raise validation_error(f"cannot edit report {report_id}", exc) from None
            new = report.model_dump(mode="json")
            return new, sorted(k for k in new if new[k] != base.get(k))

        case_id, body, changed = self.repo.amend_report(report_id, apply, actor=actor)
        log.info(
            "report edited",
            extra={"report_id": report_id, "fields": changed, "actor": actor[:200]},
        )
        report = Report.model_validate(body)
        return StoredReport(report_id, case_id, report, check_report(report)), changed

    def export(self, report_id: int, fmt: str) -> str:
        """The report as JSON or CyberTipline-style XML."""
        stored = self.get(report_id)
        if fmt == "json":
            return stored.report.model_dump_json(indent=2)
        if fmt == "cybertipline":
            return export_xml(stored.report, report_id=str(report_id))
        raise InputError(f"unknown export format {fmt!r}; use json or cybertipline")

    def mark_submitted(
        self, report_id: int, *, actor: str, reference: str, override_reason: str | None = None
    ) -> dict[str, Any]:
        """Record that the report was filed; its case becomes ``reported``.

        A report with blocking findings is refused unless ``override_reason``
        (a person's written reason) is given; the reason is audited.
        """
        stored = self.get(report_id)
        blockers = blocking(stored.findings)
        if blockers and not (override_reason or "").strip():
            codes = ", ".join(sorted({f.code for f in blockers}))
            raise ConflictError(
                f"report {report_id} has blocking findings ({codes}); fix them or give an "
                "override reason"
            )
        case = self.cases.repo.transition(
            stored.case_id,
            CaseStatus.REPORTED.value,
            reason_code="report_submitted",
            note=override_reason or f"report {report_id} submitted",
            actor=actor,
            detail={
                "report_id": report_id,
                "reference": reference,
                "overridden": sorted({f.code for f in blockers}),
            },
        )
        return self.cases.to_dict(case, events=False)


__all__ = [
    "ExportFormat",
    "ReportService",
    "ReportValidationError",
    "StoredReport",
    "load_report",
    "merge_patch",
    "validation_error",
]
