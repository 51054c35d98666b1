"""Reports over the store: build from a case, read, export, mark submitted."""

from __future__ import annotations

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


__all__ = ["ExportFormat", "ReportService", "StoredReport", "load_report"]
