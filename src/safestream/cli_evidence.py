"""CLI commands for law-enforcement requests, evidence and the audit chain.

Registered by ``cli._register_plugins``; this module must not import
:mod:`safestream.cli`. ``ctx.obj`` offers ``store()``. The audit actor of a
CLI command is ``cli:<operating-system user>``.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from safestream.cli_support import cli_errors
from safestream.errors import InputError

EXIT_BAD, EXIT_ERROR = 1, 2


_errors = cli_errors


def _json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _requests(obj: Any) -> Any:
    from safestream.actions.webhook import WebhookConfig
    from safestream.requests.model import DeadlineStandards
    from safestream.requests.service import RequestService

    return RequestService(
        obj.store(), standards=DeadlineStandards.from_env(), webhook=WebhookConfig.from_env()
    )


def _evidence(obj: Any, *, need_keys: bool = True) -> Any:
    from safestream.evidence.store import EvidenceStore

    return EvidenceStore.from_env(obj.store(), need_keys=need_keys)


def _when(value: str | None) -> datetime:
    from safestream.store.models import utcnow

    if value is None:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--received-at {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise InputError("--received-at needs a timezone, e.g. 2026-03-01T09:00:00Z")
    return parsed


# -- requests ------------------------------------------------------------------


@click.group("requests")
def requests_group() -> None:
    """Law-enforcement requests: intake, deadlines, workflow, SLA, export."""


@requests_group.command("add")
@click.option(
    "--type",
    "request_type",
    required=True,
    help="preservation, emergency_disclosure, production_order, subpoena, warrant, mlat, cloud_act",
)
@click.option("--agency", required=True)
@click.option("--officer-name", required=True)
@click.option("--officer-email", default=None)
@click.option("--officer-phone", default=None)
@click.option("--legal-basis", required=True)
@click.option("--jurisdiction", required=True, help="e.g. us, eu, au (picks the deadline preset)")
@click.option("--identifier", "identifiers", multiple=True, required=True, help="Repeatable.")
@click.option("--category", "categories", multiple=True, required=True, help="Repeatable.")
@click.option("--received-at", default=None, help="ISO 8601 with timezone [default: now].")
@click.option("--ndo", is_flag=True, help="A non-disclosure order applies.")
@click.option("--preset", default=None, help="Deadline preset (default: the jurisdiction's).")
@click.option("--reference", default="")
@click.pass_obj
def requests_add(
    obj: Any,
    request_type: str,
    agency: str,
    officer_name: str,
    officer_email: str | None,
    officer_phone: str | None,
    legal_basis: str,
    jurisdiction: str,
    identifiers: tuple[str, ...],
    categories: tuple[str, ...],
    received_at: str | None,
    ndo: bool,
    preset: str | None,
    reference: str,
) -> None:
    """Record a request; prints it with its deadline."""
    from safestream.requests.model import NewRequest, RequestType

    with _errors():
        try:
            kind = RequestType(request_type)
        except ValueError:
            raise InputError(
                f"--type must be one of {', '.join(t.value for t in RequestType)}"
            ) from None
        officer = {
            k: v
            for k, v in {
                "name": officer_name,
                "email": officer_email,
                "phone": officer_phone,
            }.items()
            if v
        }
        new = NewRequest(
            request_type=kind,
            agency=agency,
            officer=officer,
            legal_basis=legal_basis,
            jurisdiction=jurisdiction,
            identifiers=list(identifiers),
            data_categories=list(categories),
            received_at=_when(received_at),
            non_disclosure=ndo,
            preset=preset,
            reference=reference,
        )
        service = _requests(obj)
        _json(service.create(new, actor=_actor()).to_dict(service.clock()))


@requests_group.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only open requests.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.pass_obj
def requests_list(obj: Any, open_only: bool, limit: int) -> None:
    """Requests, soonest deadline first."""
    with _errors():
        service = _requests(obj)
        now = service.clock()
        _json([r.to_dict(now) for r in service.list_requests(open_only=open_only, limit=limit)])


@requests_group.command("show")
@click.argument("request_id", type=int)
@click.pass_obj
def requests_show(obj: Any, request_id: int) -> None:
    """One request; a non-disclosure order is announced first, on stderr."""
    from safestream.store.lerequests import NDO_NOTICE

    with _errors():
        service = _requests(obj)
        request = service.get(request_id)
        if request.non_disclosure:
            click.secho(f"*** {NDO_NOTICE} ***", err=True, fg="red", bold=True)
        _json(request.to_dict(service.clock()))


@requests_group.command("nondisclosure")
@click.argument("request_id", type=int)
@click.option("--set/--clear", "value", required=True, help="Set or clear the NDO flag.")
@click.option("--reason", default=None, help="Required to clear (e.g. the lifting order).")
@click.pass_obj
def requests_nondisclosure(obj: Any, request_id: int, value: bool, reason: str | None) -> None:
    """Set or clear a request's non-disclosure order (audited; clearing needs a reason)."""
    with _errors():
        service = _requests(obj)
        updated = service.set_nondisclosure(request_id, value, actor=_actor(), reason=reason)
        _json(updated.to_dict(service.clock()))


@requests_group.command("status")
@click.argument("request_id", type=int)
@click.argument(
    "status",
    type=click.Choice(["verified", "in_progress", "responded", "rejected"]),
)
@click.option("--reason", default=None, help="Required to reject.")
@click.pass_obj
def requests_status(obj: Any, request_id: int, status: str, reason: str | None) -> None:
    """Move a request along the workflow."""
    from safestream.requests.model import Status

    with _errors():
        service = _requests(obj)
        updated = service.transition(request_id, Status(status), actor=_actor(), reason=reason)
        _json(updated.to_dict(service.clock()))


@requests_group.command("sla")
@click.pass_obj
def requests_sla(obj: Any) -> None:
    """Open requests by time left, share answered in time, median time to respond."""
    with _errors():
        _json(_requests(obj).sla())


@requests_group.command("escalate")
@click.option(
    "--enqueue",
    is_flag=True,
    help="Queue a requests_escalate job for the worker instead; it then re-enqueues "
    "itself every SAFESTREAM_ESCALATION_INTERVAL_S.",
)
@click.pass_obj
def requests_escalate(obj: Any, enqueue: bool) -> None:
    """Fire due escalations now (from cron), or start the worker's periodic job."""
    with _errors():
        if enqueue:
            from safestream.jobs.requests_escalate import JOB_KIND
            from safestream.store.jobs import JobRepository

            job, _ = JobRepository(obj.store()).enqueue(JOB_KIND, {})
            _json(job.to_dict())
            return
        _json(_requests(obj).escalate_due())


@requests_group.command("export")
@click.argument("request_id", type=int)
@click.option("--reason", required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SAFESTREAM_EXPORT_SIGNING_KEY",
    required=True,
    help="Ed25519 PEM key; created (0600) if missing [env SAFESTREAM_EXPORT_SIGNING_KEY].",
)
@click.pass_obj
def requests_export(obj: Any, request_id: int, reason: str, out: Path, signing_key: Path) -> None:
    """Write the signed response package (ZIP) for a request."""
    from safestream.evidence.store import EvidenceStore
    from safestream.requests.package import build_package, load_signing_key

    with _errors():
        service = _requests(obj)
        evidence = EvidenceStore.from_env(service.store, need_keys=False)
        key = load_signing_key(signing_key, create=True)
        data = build_package(service, evidence, request_id, key, actor=_actor(), reason=reason)
        out.write_bytes(data)
        _json({"written": str(out), "bytes": len(data)})


# -- evidence ------------------------------------------------------------------


@click.group("evidence")
def evidence_group() -> None:
    """Encrypted evidence: preserve, view, holds, purge, key rotation."""


@evidence_group.command("new-key")
def evidence_new_key() -> None:
    """Print a fresh random AES-256 key (base64) for SAFESTREAM_EVIDENCE_KEYS."""
    from safestream.evidence.crypto import new_key

    click.echo(new_key())


@evidence_group.command("preserve")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--basis", type=click.Choice(["report", "preservation_request", "other"]), required=True
)
@click.option("--legal-basis", required=True)
@click.option("--account", "account_id", default=None)
@click.option("--media-type", default="application/octet-stream", show_default=True)
@click.option("--request-id", type=int, default=None)
@click.pass_obj
def evidence_preserve(
    obj: Any,
    path: Path,
    basis: str,
    legal_basis: str,
    account_id: str | None,
    media_type: str,
    request_id: int | None,
) -> None:
    """Encrypt and store a file under a first hold."""
    from safestream.evidence.store import record_dict

    with _errors():
        ev = _evidence(obj)
        record = ev.preserve(
            path.read_bytes(),
            actor=_actor(),
            basis=basis,
            legal_basis=legal_basis,
            media_type=media_type,
            account_id=account_id,
            source=f"file:{path.name}",
            metadata={"filename": path.name},
            request_id=request_id,
        )
        _json(record_dict(record, ev.holds(record.id)))


@evidence_group.command("list")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.pass_obj
def evidence_list(obj: Any, limit: int) -> None:
    """Evidence records, newest first."""
    from safestream.evidence.store import record_dict

    with _errors():
        _json([record_dict(r) for r in _evidence(obj, need_keys=False).list_objects(limit=limit)])


@evidence_group.command("get")
@click.argument("evidence_id")
@click.option("--reason", required=True, help="Why you view it (audited).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--original", is_flag=True, help="Unblurred bytes (audited); default: blurred greyscale PNG."
)
@click.pass_obj
def evidence_get(obj: Any, evidence_id: str, reason: str, out: Path, original: bool) -> None:
    """Decrypt, verify and write one object (blurred greyscale unless --original)."""
    from safestream.evidence.view import obscured_png

    with _errors():
        ev = _evidence(obj)
        got = ev.get(
            evidence_id,
            actor=_actor(),
            reason=reason,
            action="evidence.view_original" if original else "evidence.view",
            detail={"original": original},
        )
        out.write_bytes(got.content if original else obscured_png(got.content))
        _json({"written": str(out), "sha256": got.sha256, "original": original})


@evidence_group.command("hold")
@click.argument("evidence_id")
@click.option(
    "--basis", type=click.Choice(["report", "preservation_request", "other"]), required=True
)
@click.option("--legal-basis", required=True)
@click.option("--days", type=click.IntRange(1, 5 * 365), default=None)
@click.pass_obj
def evidence_hold(
    obj: Any, evidence_id: str, basis: str, legal_basis: str, days: int | None
) -> None:
    """Add a preservation hold."""
    with _errors():
        hold = _evidence(obj, need_keys=False).add_hold(
            evidence_id,
            actor=_actor(),
            basis=basis,
            legal_basis=legal_basis,
            hold_for=timedelta(days=days) if days else None,
        )
        _json(hold.to_dict())


@evidence_group.command("renew-hold")
@click.argument("hold_id", type=int)
@click.option("--reason", required=True)
@click.pass_obj
def evidence_renew(obj: Any, hold_id: int, reason: str) -> None:
    """Renew a preservation-request hold for 90 more days."""
    with _errors():
        _json(
            _evidence(obj, need_keys=False)
            .renew_hold(hold_id, actor=_actor(), reason=reason)
            .to_dict()
        )


@evidence_group.command("release-hold")
@click.argument("hold_id", type=int)
@click.option("--reason", required=True)
@click.pass_obj
def evidence_release(obj: Any, hold_id: int, reason: str) -> None:
    """Release a hold early."""
    with _errors():
        _json(
            _evidence(obj, need_keys=False)
            .release_hold(hold_id, actor=_actor(), reason=reason)
            .to_dict()
        )


@evidence_group.command("purge")
@click.option(
    "--enqueue",
    is_flag=True,
    help="Queue an evidence_purge job for the worker instead; it then re-enqueues "
    "itself every SAFESTREAM_PURGE_INTERVAL_S.",
)
@click.pass_obj
def evidence_purge(obj: Any, enqueue: bool) -> None:
    """Purge objects whose holds all expired (each purge is audited)."""
    with _errors():
        if enqueue:
            from safestream.jobs.evidence_purge import JOB_KIND
            from safestream.store.jobs import JobRepository

            job, _ = JobRepository(obj.store()).enqueue(JOB_KIND, {})
            _json(job.to_dict())
            return
        _json({"purged": _evidence(obj, need_keys=False).purge_expired(actor=_actor())})


@evidence_group.command("rotate-key")
@click.pass_obj
def evidence_rotate(obj: Any) -> None:
    """Re-encrypt every object under the active (first listed) key."""
    with _errors():
        _json({"reencrypted": _evidence(obj).rotate(actor=_actor())})


@evidence_group.command("check-storage")
@click.option(
    "--sweep-orphans-older-than-s",
    "sweep_s",
    type=click.FloatRange(60),
    default=None,
    help="Also delete orphan objects (left by a crash) older than this.",
)
@click.pass_obj
def evidence_check_storage(obj: Any, sweep_s: float | None) -> None:
    """Compare rows and stored objects: orphans and rows whose object is missing (exit 1)."""
    with _errors():
        evidence = _evidence(obj, need_keys=False)
        result = evidence.check_storage()
        out = {"backend": evidence.backend.describe(), **result.to_dict()}
        if sweep_s is not None:
            out["swept"] = evidence.sweep_orphans(min_age_s=sweep_s)
    _json(out)
    if not result.ok:
        click.echo(f"{len(result.missing)} evidence objects are missing from storage", err=True)
        sys.exit(EXIT_BAD)


@evidence_group.command("verify")
@click.argument("evidence_id")
@click.pass_obj
def evidence_verify(obj: Any, evidence_id: str) -> None:
    """Decrypt and check one object's integrity without writing it anywhere."""
    with _errors():
        _evidence(obj).verify(evidence_id)
        _json({"evidence_id": evidence_id, "ok": True})


# -- audit ---------------------------------------------------------------------


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit trail."""


@audit_group.command("verify")
@click.pass_obj
def audit_verify(obj: Any) -> None:
    """Verify the chain; exit 1 and name the first bad event when it was tampered with."""
    from safestream.store.audit import AuditRepository

    with _errors():
        result = AuditRepository(obj.store()).verify()
    _json(result.to_dict())
    if not result.ok:
        click.echo(f"audit chain broken: {result.message}", err=True)
        sys.exit(EXIT_BAD)


@audit_group.command("list")
@click.option("--after", "after_seq", type=click.IntRange(0), default=0)
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--action", default=None)
@click.option("--object", "object_id", default=None)
@click.pass_obj
def audit_list(
    obj: Any, after_seq: int, limit: int, action: str | None, object_id: str | None
) -> None:
    """Audit events in chain order."""
    from safestream.store.audit import AuditRepository

    with _errors():
        events = AuditRepository(obj.store()).list_events(
            limit=limit, after_seq=after_seq, action=action, object_id=object_id
        )
        _json([e.to_dict() for e in events])


#: Commands added to the ``safestream`` group.
COMMANDS: list[click.Command] = [requests_group, evidence_group, audit_group]
