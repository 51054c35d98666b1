"""The ``safestream`` command."""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from safestream.errors import ConfigError, InputError, SafestreamError, error_kind

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_MATCH, EXIT_ERROR = 0, 1, 2
err_console = Console(stderr=True, soft_wrap=True)


class _Ctx:
    def __init__(self, data_dir: Path | None, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url

    def store(self) -> Any:
        from safestream.store.db import Store

        return Store.open(self.database_url, data_dir=self.data_dir)

    def snapshot_dir(self) -> Path:
        from safestream.store.db import default_data_dir

        return (self.data_dir or default_data_dir()) / "index-snapshot"

    def repo(self) -> Any:
        from safestream.store.banks import BankRepository

        return BankRepository(self.store())


@contextmanager
def _errors() -> Iterator[None]:
    """Turn our errors into a message on stderr and exit status 2."""
    try:
        yield
    except SafestreamError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_ERROR)


def _json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def _hash_options(fn: F) -> F:
    fn = click.option(
        "--mode",
        type=click.Choice(["exact", "fast"]),
        default="exact",
        show_default=True,
        help="exact: full decode (as HMA); fast: reduced decode of large images.",
    )(fn)
    fn = click.option(
        "--dihedral", is_flag=True, help="Also hash/match the 8 rotations and flips."
    )(fn)
    fn = click.option(
        "--min-quality",
        type=click.IntRange(0, 100),
        default=50,
        show_default=True,
        help="PDQ hashes of lower quality are not used for matching.",
    )(fn)
    fn = click.option(
        "--max-pixels",
        type=click.IntRange(1),
        default=None,
        help="Refuse images with more pixels (decompression bombs). Default: Pillow's limit.",
    )(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SAFESTREAM_DATA_DIR",
    help="Where the SQLite database lives [env SAFESTREAM_DATA_DIR].",
)
@click.option(
    "--database-url",
    envvar="SAFESTREAM_DATABASE_URL",
    help="SQLAlchemy URL, e.g. postgresql://user@host/db [env SAFESTREAM_DATABASE_URL].",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="safestream")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, database_url: str | None, verbose: int) -> None:
    """safestream: detect known child-abuse material by hash, and act on it."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = _Ctx(data_dir, database_url)


# -- hash ----------------------------------------------------------------------


def _video_fps_option(fn: F) -> F:
    return click.option(
        "--fps",
        "video_fps",
        type=click.FloatRange(min=0.0, min_open=True),
        default=1.0,
        show_default=True,
        help="Videos: frames sampled per second (as 'video hash --fps').",
    )(fn)


@cli.command("hash")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_hash_options
@click.option("--all-frames", is_flag=True, help="Hash every frame of animated images.")
@_video_fps_option
def hash_cmd(
    files: tuple[Path, ...],
    mode: str,
    dihedral: bool,
    min_quality: int,
    max_pixels: int | None,
    all_frames: bool,
    video_fps: float,
) -> None:
    """Print the hashes of image and video FILES, one JSON object per line.

    Videos are recognised by content and give "kind": "video", the file digests,
    duration and the PDQ of frames sampled --fps times a second (--max-pixels bounds
    each frame). A file that cannot be hashed gives a line with an "error" object;
    the exit status is then 2.
    """
    from safestream.signals.video import VideoHashes, hash_media_file

    status = EXIT_OK
    for path in files:
        try:
            h = hash_media_file(
                path,
                mode=mode,
                min_quality=min_quality,
                dihedral=dihedral,
                all_frames=all_frames,
                max_pixels=max_pixels,
                sample_fps=video_fps,
            )
            kind = {"kind": "video"} if isinstance(h, VideoHashes) else {}
            click.echo(json.dumps({"path": str(path), **kind, **h.to_dict()}))
        except SafestreamError as exc:
            status = EXIT_ERROR
            error = {"kind": error_kind(exc), "message": str(exc)}
            click.echo(json.dumps({"path": str(path), "error": error}))
    sys.exit(status)


# -- banks ---------------------------------------------------------------------


@cli.group()
def bank() -> None:
    """Create, inspect, import and export banks of known-content hashes."""


@bank.command("create")
@click.argument("name")
@click.option("--description", default="", help="Free text.")
@click.option("--source", default="internal", show_default=True, help="Provenance (NCMEC, IWF...).")
@click.option("--allow-list", is_flag=True, help="Matches of this bank suppress a verdict.")
@click.option(
    "--threshold", type=int, default=31, show_default=True, help="PDQ distance threshold (bits)."
)
@click.option("--disabled", is_flag=True, help="Create the bank disabled.")
@click.pass_obj
def bank_create(
    obj: _Ctx,
    name: str,
    description: str,
    source: str,
    allow_list: bool,
    threshold: int,
    disabled: bool,
) -> None:
    """Create bank NAME."""
    with _errors():
        b = obj.repo().create_bank(
            name,
            description=description,
            source=source,
            is_allow_list=allow_list,
            pdq_threshold=threshold,
            enabled=not disabled,
        )
        _json(b.to_dict())


@bank.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
def bank_list(obj: _Ctx, as_json: bool) -> None:
    """List banks."""
    with _errors():
        banks = obj.repo().list_banks()
        if as_json:
            _json([b.to_dict() for b in banks])
            return
        table = Table()
        for col in ("name", "entries", "enabled", "allow-list", "threshold", "source", "version"):
            table.add_column(col)
        for b in banks:
            table.add_row(
                b.name,
                str(b.entry_count),
                "yes" if b.enabled else "no",
                "yes" if b.is_allow_list else "no",
                str(b.pdq_threshold),
                b.source,
                str(b.version),
            )
        Console().print(table)


@bank.command("show")
@click.argument("name")
@click.pass_obj
def bank_show(obj: _Ctx, name: str) -> None:
    """Show bank NAME as JSON."""
    with _errors():
        _json(obj.repo().get_bank(name).to_dict())


@bank.command("update")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--source", default=None)
@click.option("--threshold", type=int, default=None, help="PDQ distance threshold (bits).")
@click.option("--enable/--disable", "enabled", default=None, help="Enable or disable matching.")
@click.option("--allow-list/--no-allow-list", "allow_list", default=None)
@click.pass_obj
def bank_update(
    obj: _Ctx,
    name: str,
    description: str | None,
    source: str | None,
    threshold: int | None,
    enabled: bool | None,
    allow_list: bool | None,
) -> None:
    """Change the settings of bank NAME."""
    with _errors():
        b = obj.repo().update_bank(
            name,
            description=description,
            source=source,
            pdq_threshold=threshold,
            enabled=enabled,
            is_allow_list=allow_list,
        )
        _json(b.to_dict())


@bank.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Confirm deletion of the bank and all its entries.")
@click.pass_obj
def bank_delete(obj: _Ctx, name: str, yes: bool) -> None:
    """Delete bank NAME and all its entries."""
    with _errors():
        if not yes:
            raise InputError("deleting a bank removes all its entries: repeat with --yes")
        obj.repo().delete_bank(name)
        _json({"deleted": name})


@bank.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "list_format",
    type=click.Choice(["te", "csv", "md5", "sha1", "sha256", "pdq"]),
    default=None,
    help="List format (default: detected from the name and first line).",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Skip malformed lines (reported) instead of failing."
)
@click.pass_obj
def bank_import(
    obj: _Ctx, name: str, file: Path, list_format: str | None, skip_invalid: bool
) -> None:
    """Import hash list FILE into bank NAME.

    All or nothing: a malformed line stops the import (naming the file and
    line) and adds nothing, unless --skip-invalid. An interrupted import
    resumes from its last checkpoint when run again on the same file.
    """
    from safestream.banks.importer import import_file

    with _errors():
        result = import_file(
            obj.repo(), name, file, list_format=list_format, skip_invalid=skip_invalid
        )
        _json(result.to_dict())
        if result.errors:
            sys.exit(EXIT_ERROR)


@bank.command("export")
@click.argument("name")
@click.option(
    "--format",
    "list_format",
    type=click.Choice(["te", "csv", "md5", "sha1", "sha256", "pdq"]),
    default="te",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_obj
def bank_export(obj: _Ctx, name: str, list_format: str, output: Path | None) -> None:
    """Export bank NAME as a hash list (stdout unless -o)."""
    from safestream.banks.formats import HashRecord, get_format

    with _errors():
        repo = obj.repo()
        repo.get_bank(name)
        fmt = get_format(list_format)
        records = (
            HashRecord(e.signal_type, e.value, e.external_id, e.source, e.labels)
            for e in repo.iter_entries(name)
        )
        if output is None:
            count = fmt.write(records, sys.stdout)
        else:
            tmp = output.with_name(output.name + ".partial")
            with tmp.open("w", encoding="utf-8", newline="") as f:
                count = fmt.write(records, f)
            tmp.replace(output)  # no half-written export under the final name
        err_console.print(f"exported {count} entries from {name!r}")


def _hash_value(st: Any, value: str) -> str:
    """``st.parse(value)``, saying what to do when the value is a file's path instead."""
    try:
        parsed: str = st.parse(value)
    except SafestreamError:
        if Path(value).is_file():
            raise InputError(
                f"{value!r} is a file, not a {st.name} hash: bank add takes hash values. "
                f"`safestream hash {value}` prints the file's hashes (a video: `safestream "
                "video bank-add BANK FILE` banks its frames)"
            ) from None
        raise
    return parsed


@bank.command("add")
@click.argument("name")
@click.argument("values", nargs=-1, required=True)
@click.option("--type", "signal_type", default="pdq", show_default=True, help="Signal type.")
@click.option("--external-id", default=None, help="Id of the entry at its source.")
@click.option("--source", default=None, help="Provenance of the entry.")
@click.option("--label", "labels", multiple=True, help="A label (repeatable).")
@click.pass_obj
def bank_add(
    obj: _Ctx,
    name: str,
    values: tuple[str, ...],
    signal_type: str,
    external_id: str | None,
    source: str | None,
    labels: tuple[str, ...],
) -> None:
    """Add hash VALUES to bank NAME."""
    from safestream.banks.formats import HashRecord
    from safestream.signals.base import get_signal_type

    with _errors():
        st = get_signal_type(signal_type)
        records = [
            HashRecord(st.name, _hash_value(st, v), external_id, source, labels) for v in values
        ]
        ids, duplicates = obj.repo().add_entries(name, records)
        _json({"added_ids": ids, "duplicates": duplicates})


@bank.command("remove")
@click.argument("name")
@click.argument("values", nargs=-1)
@click.option("--type", "signal_type", default="pdq", show_default=True)
@click.option("--entry-id", "entry_ids", type=int, multiple=True, help="Entry id (repeatable).")
@click.pass_obj
def bank_remove(
    obj: _Ctx, name: str, values: tuple[str, ...], signal_type: str, entry_ids: tuple[int, ...]
) -> None:
    """Remove entries from bank NAME, by value or by --entry-id."""
    from safestream.signals.base import get_signal_type

    with _errors():
        if not values and not entry_ids:
            raise InputError("give hash values or --entry-id to remove")
        st = get_signal_type(signal_type)
        pairs = [(st.name, st.parse(v)) for v in values]
        removed = obj.repo().remove_entries(name, entry_ids=entry_ids, values=pairs)
        _json({"removed": removed})


# -- match and scan ------------------------------------------------------------


@cli.command("match")
@click.argument("value")
@click.option(
    "--type",
    "signal_type",
    default=None,
    help="Signal type (default: pdq for 64 hex chars, md5 for 32, sha1 for 40).",
)
@click.option("--radius", type=click.IntRange(0, 256), default=None, help="Override thresholds.")
@click.pass_obj
def match_cmd(obj: _Ctx, value: str, signal_type: str | None, radius: int | None) -> None:
    """Look up one hash VALUE in every enabled bank. Exit 1 when it matched."""
    from safestream.engine.check import Engine

    with _errors():
        if signal_type is None:
            by_length = {64: "pdq", 32: "md5", 40: "sha1"}
            signal_type = by_length.get(len(value.strip()))
            if signal_type is None:
                raise InputError("cannot tell the signal type from the length: give --type")
        engine = Engine.open(obj.store(), snapshot_dir=obj.snapshot_dir())
        matches = engine.lookup(signal_type, value, radius=radius)
        _json({"signal_type": signal_type, "matches": [m.to_dict() for m in matches]})
        if any(not m.is_allow_list for m in matches):
            sys.exit(EXIT_MATCH)


def _csv_row(rec: Any) -> list[str]:
    v = rec.verdict
    best = v.matches[0] if v is not None and v.matches else None
    signals = v.signals if v is not None else {}
    return [
        rec.path,
        rec.outcome,
        best.bank if best else "",
        best.signal_type if best else "",
        str(best.distance_bits) if best else "",
        str(len(v.matches)) if v else "",
        str(signals.get("pdq_quality", "")),
        str(signals.get("md5", "")),
        rec.error_kind or "",
        rec.error or "",
        "video" if rec.is_video else "image",
        " ".join(f"{t:g}" for t in sorted({f.timestamp_s for f in rec.video.frame_matches}))
        if rec.video is not None
        else "",
    ]


@cli.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_hash_options
@click.option(
    "--format",
    "out_format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--workers", type=click.IntRange(1), default=None, help="Default: number of cores.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_video_fps_option
@click.option(
    "--queue",
    is_flag=True,
    help="Queue a batch_scan job per path for 'safestream worker' instead of scanning here "
    "(paths must be inside SAFESTREAM_SCAN_ROOTS).",
)
@click.option(
    "--account-id",
    default=None,
    help="With --queue: whose stored media this is (matches become that account's cases).",
)
@click.option("--username", default=None, help="With --queue: the account's username.")
@click.option("--profile-url", default=None, help="With --queue: the account's profile URL.")
@click.pass_obj
def scan_cmd(
    obj: _Ctx,
    paths: tuple[Path, ...],
    mode: str,
    dihedral: bool,
    min_quality: int,
    max_pixels: int | None,
    out_format: str,
    output: Path | None,
    workers: int | None,
    no_progress: bool,
    video_fps: float,
    queue: bool,
    account_id: str | None,
    username: str | None,
    profile_url: str | None,
) -> None:
    """Scan image and video files and folders (recursively) against every enabled bank.

    Videos (recognised by content) are checked by file digest, every sampled
    frame against image banks (with its timestamp) and against banked videos.

    One record per file (JSON lines or CSV) on stdout or -o; progress and a
    summary on stderr. Exit status: 0 nothing matched, 1 something matched,
    2 some file could not be checked (as grep, errors win over matches).
    With --queue, prints the queued jobs (results: 'GET /v1/scans/{id}').
    """
    from safestream.engine.check import Engine, EngineOptions
    from safestream.scan import iter_files, scan

    context = {"account_id": account_id, "username": username, "profile_url": profile_url}
    if queue:
        _queue_scans(obj, paths, mode, dihedral, min_quality, max_pixels, context)
        return
    if any(v is not None for v in context.values()):
        raise click.UsageError(
            "--account-id, --username and --profile-url only apply with --queue "
            "(a local scan writes nothing to the store)"
        )
    with _errors():
        for p in paths:
            if not p.exists():
                raise InputError(f"{p} does not exist")
        engine = Engine.open(
            obj.store(),
            EngineOptions(
                mode=mode, min_quality=min_quality, dihedral=dihedral, max_pixels=max_pixels
            ),
            snapshot_dir=obj.snapshot_dir(),
        )
        total = sum(1 for _ in iter_files(paths))
        out: TextIO = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        writer = csv.writer(out, lineterminator="\n") if out_format == "csv" else None
        if writer:
            writer.writerow(
                [
                    "path",
                    "outcome",
                    "bank",
                    "signal_type",
                    "distance_bits",
                    "matches",
                    "pdq_quality",
                    "md5",
                    "error_kind",
                    "error",
                    "kind",
                    "match_timestamps_s",
                ]
            )
        show = not no_progress and err_console.is_terminal
        progress = Progress(
            TextColumn("scanning"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not show,
        )
        started = time.perf_counter()
        with progress:
            task = progress.add_task("scan", total=total)

            def emit(rec: Any) -> None:
                if writer:
                    writer.writerow(_csv_row(rec))
                else:
                    out.write(json.dumps(rec.to_dict()) + "\n")
                progress.advance(task)

            summary = scan(engine, paths, workers=workers, on_record=emit, video_fps=video_fps)
        if output:
            out.close()
        elapsed = time.perf_counter() - started
        table = Table(title="scan summary")
        table.add_column("files")
        table.add_column("videos")
        table.add_column("matched")
        table.add_column("suppressed")
        table.add_column("no match")
        table.add_column("errors")
        table.add_column("files/s")
        table.add_row(
            str(summary.files),
            str(summary.videos),
            str(summary.matched),
            str(summary.outcomes.get("suppressed", 0)),
            str(summary.outcomes.get("no_match", 0)),
            str(summary.errors)
            + (
                " (" + ", ".join(f"{k}: {v}" for k, v in sorted(summary.error_kinds.items())) + ")"
                if summary.error_kinds
                else ""
            ),
            f"{summary.files / elapsed:.1f}" if elapsed > 0 else "-",
        )
        err_console.print(table)
        if summary.errors:
            sys.exit(EXIT_ERROR)
        if summary.matched:
            sys.exit(EXIT_MATCH)


def _queue_scans(
    obj: _Ctx,
    paths: tuple[Path, ...],
    mode: str,
    dihedral: bool,
    min_quality: int,
    max_pixels: int | None,
    context: dict[str, str | None],
) -> None:
    from safestream.jobs.batch_scan import (
        JOB_KIND,
        MAX_ATTEMPTS,
        resolve_scan_path,
        scan_context,
        scan_roots,
    )
    from safestream.store.jobs import JobRepository

    with _errors():
        given = {k: v for k, v in scan_context(context).items() if v is not None}
        roots = scan_roots()
        # Checked here to fail early; the worker checks again when it runs.
        real = [resolve_scan_path(str(p.absolute()), roots) for p in paths]
        repo = JobRepository(obj.store())
        queued = []
        for path in real:
            payload = {
                "path": str(path),
                "mode": mode,
                "dihedral": dihedral,
                "min_quality": min_quality,
                "max_pixels": max_pixels,
                **given,
            }
            job, _ = repo.enqueue(JOB_KIND, payload, max_attempts=MAX_ATTEMPTS)
            queued.append({**job.to_dict(), "path": str(path)})
        _json(queued)


# -- service -------------------------------------------------------------------


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SAFESTREAM_POLICY_FILE",
    default=None,
    help="Policy rules (TOML) [env SAFESTREAM_POLICY_FILE]. Default: block known material.",
)
@click.pass_obj
def serve_cmd(obj: _Ctx, host: str, port: int, workers: int, policy_file: Path | None) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import os

    import uvicorn

    from safestream.actions.webhook import WebhookConfig
    from safestream.api.settings import ServiceSettings
    from safestream.engine.policy import DEFAULT_POLICY, Policy

    with _errors():
        # Validate everything before any worker starts: errors are precise here.
        ServiceSettings.from_env()
        webhook = WebhookConfig.from_env()
        policy = DEFAULT_POLICY
        if policy_file is not None:
            policy = Policy.load(policy_file)
        if "webhook" in policy.action_names() and webhook is None:
            raise ConfigError(
                "the policy uses the 'webhook' action but SAFESTREAM_WEBHOOK_URL is not set"
            )
        obj.store().dispose()
        # Only once everything is valid: the server processes read these.
        if policy_file is not None:
            os.environ["SAFESTREAM_POLICY_FILE"] = str(policy_file.resolve())
        if obj.data_dir is not None:
            os.environ["SAFESTREAM_DATA_DIR"] = str(obj.data_dir.resolve())
        if obj.database_url is not None:
            os.environ["SAFESTREAM_DATABASE_URL"] = obj.database_url
    if workers == 1:
        uvicorn.run(
            "safestream.api.server:app_from_env",
            factory=True,
            host=host,
            port=port,
            log_level="info",
        )
        return
    import socket

    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "safestream.api.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )
    sock = config.bind_socket()
    # uvicorn creates this socket without IPPROTO_TCP, so asyncio never sets
    # TCP_NODELAY on the connections the workers accept; Linux copies it from the
    # listening socket. Without it every keep-alive response waits for the
    # client's delayed ACK (~40 ms): 2 workers served fewer requests than 1.
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Multiprocess(config, sockets=[sock]).run()


def _cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "integrator", "curator", "reviewer", "le_liaison", "auditor"]),
)
@click.option("--name", default="", help="What the key is for.")
@click.pass_obj
def keys_create(obj: _Ctx, role: str, name: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from safestream.store.service import KeyRepository

    with _errors():
        key, record = KeyRepository(obj.store()).create(role, name, actor=_cli_actor())
        err_console.print(
            f"key {record.id} ({record.role.value}) created; it is shown once, store it now:"
        )
        click.echo(key)


@keys.command("list")
@click.pass_obj
def keys_list(obj: _Ctx) -> None:
    """List keys (never their secrets)."""
    from safestream.store.service import KeyRepository

    with _errors():
        _json([k.to_dict() for k in KeyRepository(obj.store()).list()])


@keys.command("revoke")
@click.argument("key_id", type=int)
@click.pass_obj
def keys_revoke(obj: _Ctx, key_id: int) -> None:
    """Revoke key KEY_ID; it stops working at once."""
    from safestream.store.service import KeyRepository

    with _errors():
        _json(KeyRepository(obj.store()).revoke(key_id, actor=_cli_actor()).to_dict())


@cli.group()
def checks() -> None:
    """Check records kept by the service."""


@checks.command("purge")
@click.option(
    "--older-than-days",
    type=click.IntRange(1),
    envvar="SAFESTREAM_CHECK_RETENTION_DAYS",
    default=90,
    show_default=True,
)
@click.pass_obj
def checks_purge(obj: _Ctx, older_than_days: int) -> None:
    """Delete check records past the retention period."""
    from safestream.store.service import CheckRepository

    with _errors():
        removed = CheckRepository(obj.store()).purge_older_than(older_than_days)
        _json({"purged": removed})


# -- demo ----------------------------------------------------------------------


@cli.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Working directory (wiped first); holds its own SQLite database.",
)
@click.option("--workers", type=click.IntRange(1), default=None)
def demo_cmd(directory: Path, workers: int | None) -> None:
    """Run the demo on synthetic images: bank some, scan transformed copies."""
    from safestream.demo import run_demo

    with _errors():
        failures = run_demo(directory, workers=workers)
        sys.exit(EXIT_ERROR if failures else EXIT_OK)


def _register_plugins() -> None:
    # Command groups that live in their own modules (they must not import this one).
    from safestream.cli_cases import COMMANDS as CASE_COMMANDS
    from safestream.cli_classify import COMMANDS as CLASSIFY_COMMANDS
    from safestream.cli_device import COMMANDS as DEVICE_COMMANDS
    from safestream.cli_evidence import COMMANDS as EVIDENCE_COMMANDS
    from safestream.cli_jobs import COMMANDS as JOB_COMMANDS
    from safestream.cli_video import COMMANDS as VIDEO_COMMANDS

    plugins = JOB_COMMANDS + CLASSIFY_COMMANDS + EVIDENCE_COMMANDS + DEVICE_COMMANDS
    for command in plugins + VIDEO_COMMANDS + CASE_COMMANDS:
        cli.add_command(command)


_register_plugins()


def main() -> None:
    """Entry point of the ``safestream`` command."""
    cli()


if __name__ == "__main__":
    main()
