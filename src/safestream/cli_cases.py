"""CLI commands for cases (review) and law-enforcement reports.

Registered by ``cli._register_plugins``; this module must not import
:mod:`safestream.cli`. ``ctx.obj`` offers ``store()``. The audit actor of a
CLI command is ``cli:<operating-system user>``.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click

from safestream.cli_support import cli_errors
from safestream.errors import InputError

EXIT_BAD, EXIT_ERROR = 1, 2


_errors = cli_errors


def _json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _cases(obj: Any) -> Any:
    from safestream.cases.model import CaseConfig
    from safestream.cases.service import CaseService

    return CaseService(obj.store(), CaseConfig.from_env())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read JSON: {exc}") from None


# -- cases ---------------------------------------------------------------------


@click.group("cases")
def cases_group() -> None:
    """Cases: detections grouped per account and incident window, for review."""


@cases_group.command("sync")
@click.pass_obj
def cases_sync(obj: Any) -> None:
    """Group new detections (check records) into cases."""
    with _errors():
        _json({"added": _cases(obj).sync()})


@cases_group.command("list")
@click.option("--status", default=None, help="new, in_review, confirmed, dismissed, reported")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_obj
def cases_list(obj: Any, status: str | None, limit: int) -> None:
    """Cases, most urgent first, with priority and reasons."""
    with _errors():
        svc = _cases(obj)
        _json([svc.to_dict(c, events=False) for c in svc.list(status=status, limit=limit)])


@cases_group.command("show")
@click.argument("case_id", type=int)
@click.pass_obj
def cases_show(obj: Any, case_id: int) -> None:
    """One case with its detections."""
    with _errors():
        svc = _cases(obj)
        _json(svc.to_dict(svc.get(case_id)))


@cases_group.command("decide")
@click.argument("case_id", type=int)
@click.option("--status", required=True, type=click.Choice(["in_review", "confirmed", "dismissed"]))
@click.option("--reason-code", required=True)
@click.option("--note", default="")
@click.option("--allow-list-bank", default=None, help="On dismissal: allow-list the files here.")
@click.option(
    "--add-to-bank", default=None, help="On confirmation: add the files' hashes to this bank."
)
@click.pass_obj
def cases_decide(
    obj: Any,
    case_id: int,
    status: str,
    reason_code: str,
    note: str,
    allow_list_bank: str | None,
    add_to_bank: str | None,
) -> None:
    """Record a decision on a case (audited)."""
    with _errors():
        svc = _cases(obj)
        case = svc.decide(
            case_id,
            status,
            reason_code=reason_code,
            note=note,
            actor=_actor(),
            allow_list_bank=allow_list_bank,
            add_to_bank=add_to_bank,
        )
        _json(svc.to_dict(case, events=False))


# -- reports -------------------------------------------------------------------


@click.group("reports")
def reports_group() -> None:
    """Law-enforcement reports: build from a confirmed case, check, export."""


@reports_group.command("build")
@click.argument("case_id", type=int)
@click.option(
    "--reporter",
    "reporter_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Reporter JSON [default: SAFESTREAM_REPORTER_* variables].",
)
@click.option("--platform", default=None)
@click.option(
    "--chat-excerpt",
    "chat_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A text file with the relevant conversation.",
)
@click.option("--files-viewed/--files-not-viewed", default=None)
@click.option(
    "--publicly-available/--not-publicly-available",
    default=None,
    help="Whether the files were publicly available [default: not recorded].",
)
@click.option(
    "--incident-type",
    type=click.Choice(["child_pornography", "online_enticement", "child_sex_trafficking"]),
    default="child_pornography",
    show_default=True,
)
@click.option("--additional-info", default=None, help="Free text for the investigator.")
@click.pass_obj
def reports_build(
    obj: Any,
    case_id: int,
    reporter_file: Path | None,
    platform: str | None,
    chat_file: Path | None,
    files_viewed: bool | None,
    publicly_available: bool | None,
    incident_type: str,
    additional_info: str | None,
) -> None:
    """Build and store a report of a confirmed case; prints it with its findings."""
    from pydantic import ValidationError

    from safestream.reports.build import BuildOptions, reporter_from_env
    from safestream.reports.model import IncidentType, Reporter
    from safestream.reports.service import ReportService

    with _errors():
        if reporter_file is not None:
            try:
                reporter = Reporter.model_validate(_read_json(reporter_file))
            except ValidationError as exc:
                raise InputError(f"{reporter_file}: invalid reporter: {exc}") from None
        else:
            reporter = reporter_from_env()
        excerpt = chat_file.read_text(encoding="utf-8") if chat_file else None
        options = BuildOptions(
            reporter=reporter,
            platform=platform,
            chat_excerpt=excerpt,
            files_viewed_by_esp=files_viewed,
            publicly_available=publicly_available,
            incident_type=IncidentType[incident_type.upper()],
            additional_info=additional_info,
        )
        _json(ReportService(_cases(obj)).build(case_id, options, actor=_actor()).to_dict())


@reports_group.command("export")
@click.argument("report_id", type=int)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "cybertipline"]),
    default="json",
    show_default=True,
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_obj
def reports_export(obj: Any, report_id: int, fmt: str, out: Path | None) -> None:
    """Export a stored report (CyberTipline XML is modelled: validate against NCMEC's XSD)."""
    from safestream.reports.service import ReportService

    with _errors():
        text = ReportService(_cases(obj)).export(report_id, fmt)
        if out is None:
            click.echo(text)
        else:
            out.write_text(text, encoding="utf-8")


@reports_group.command("edit")
@click.argument("report_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def reports_edit(obj: Any, report_id: int, file: Path) -> None:
    """Complete a stored report with a JSON merge patch FILE (RFC 7396; audited).

    Objects merge, arrays and values replace, null removes. The edited report
    is validated against the model (``safestream reports schema``) and its
    quality findings are printed. Refused once the report is filed or while a
    submission of it is queued or running; nothing is written on a refusal.
    """
    from safestream.reports.service import ReportService

    with _errors():
        stored, changed = ReportService(_cases(obj)).amend(
            report_id, _read_json(file), actor=_actor()
        )
        _json(stored.to_dict() | {"changed": changed})


@reports_group.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def reports_check(file: Path) -> None:
    """Print a report JSON file's quality findings; exit 1 on blocking ones."""
    from safestream.reports.quality import blocking, check_report
    from safestream.reports.service import load_report

    with _errors():
        findings = check_report(load_report(_read_json(file)))
        _json([f.to_dict() for f in findings])
        if blocking(findings):
            sys.exit(EXIT_BAD)


def _report_file(path: Path) -> Any:
    from safestream.reports.service import load_report

    return load_report(_read_json(path))


@reports_group.command("example")
def reports_example() -> None:
    """Print a complete example report as JSON (synthetic people and data)."""
    from safestream.reports.example import example_report

    click.echo(example_report().model_dump_json(indent=2))


@reports_group.command("schema")
def reports_schema() -> None:
    """Print the JSON Schema of the report model."""
    from safestream.reports.model import Report

    _json(Report.model_json_schema())


@reports_group.command("render")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "cybertipline"]),
    default="cybertipline",
    show_default=True,
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def reports_render(fmt: str, file: Path) -> None:
    """Render a report JSON file as CyberTipline-style XML or normalised JSON."""
    from safestream.reports.cybertipline import export_xml

    with _errors():
        report = _report_file(file)
        click.echo(
            export_xml(report) if fmt == "cybertipline" else report.model_dump_json(indent=2)
        )


def _xml_of(path: Path) -> str:
    """The XML to validate: an XML file as is, a report JSON file rendered."""
    from safestream.reports.cybertipline import export_xml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if text.lstrip().startswith(("{", "[")):
        return export_xml(_report_file(path))
    return text


@reports_group.command("validate")
@click.option(
    "--xsd",
    "xsd_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The hotline's XSD (never committed: NCMEC's XSD may not be redistributed).",
)
@click.option(
    "--fetch-xsd", is_flag=True, help="Fetch the XSD from the API's /xsd (SAFESTREAM_CYBERTIP_*)."
)
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def reports_validate(obj: Any, xsd_file: Path | None, fetch_xsd: bool, report: Path) -> None:
    """Validate exported XML (or a report JSON file, rendered) against an XSD; exit 1 if invalid."""
    from safestream.reports.service import ReportService
    from safestream.reports.submission import service_from_env, validate_xml

    with _errors():
        if (xsd_file is None) == (not fetch_xsd):
            raise InputError("give --xsd FILE or --fetch-xsd (one of them)")
        document = _xml_of(report)
        if xsd_file is not None:
            try:
                xsd = xsd_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{xsd_file}: cannot read: {exc}") from None
        else:
            xsd = service_from_env(ReportService(_cases(obj)), actor=_actor()).fetch_xsd()
        errors = validate_xml(document, xsd)
        _json({"valid": not errors, "errors": errors})
        if errors:
            sys.exit(EXIT_BAD)


@reports_group.command("submit")
@click.argument("report_id", type=int)
@click.option(
    "--override-reason", default=None, help="A written reason to file despite blocking findings."
)
@click.option(
    "--queue",
    is_flag=True,
    help="Queue a report_submit job for `safestream worker` instead of waiting; prints the job.",
)
@click.pass_obj
def reports_submit(obj: Any, report_id: int, override_reason: str | None, queue: bool) -> None:
    """File a stored report with the CyberTipline API (resumes an interrupted submission).

    Waits for the hotline by default; with ``--queue`` it checks the report
    and queues the submission (the job of the report if one is queued or
    running already): follow it with ``safestream jobs show ID``.
    """
    from safestream.reports.service import ReportService
    from safestream.reports.submission import (
        CybertipConfig,
        SubmissionService,
        no_client,
        service_from_env,
    )

    with _errors():
        actor = _actor()
        reports = ReportService(_cases(obj))
        if not queue:
            svc = service_from_env(reports, actor=actor)
            _json(svc.submit(report_id, actor=actor, override_reason=override_reason))
            return
        from safestream.jobs.report_submit import enqueue_submit

        CybertipConfig.from_env()  # the worker needs it: say so now
        SubmissionService(reports, no_client).preflight(report_id, override_reason=override_reason)
        job, created = enqueue_submit(
            reports.cases.store, report_id, actor=actor, override_reason=override_reason
        )
        _json({"job": job.to_dict(), "created": created})


@reports_group.command("submissions")
@click.argument("report_id", type=int)
@click.pass_obj
def reports_submissions(obj: Any, report_id: int) -> None:
    """A report's submission state and every stored request and response."""
    from safestream.reports.service import ReportService
    from safestream.reports.submission import SubmissionService, no_client

    with _errors():
        _json(SubmissionService(ReportService(_cases(obj)), no_client).submissions(report_id))


@reports_group.command("stats")
@click.pass_obj
def reports_stats(obj: Any) -> None:
    """Timeliness: median time per stage and the share within 24 hours."""
    from safestream.reports.timeliness import report_stats

    with _errors():
        stats = report_stats(obj.store())
        stats.pop("timelines")
        _json(stats)


COMMANDS: list[click.Command] = [cases_group, reports_group]
