"""The ``batch_scan`` job: scan a folder on the server, store a result per file.

Callers name a path; the server decides what may be scanned. The path must
resolve (symlinks followed, ``..`` collapsed) inside one of the roots in
``SAFESTREAM_SCAN_ROOTS`` (colon-separated). With no roots configured no
scan is accepted. The API checks this when the job is submitted and the
worker checks it again when it runs (its own configuration, and a symlink may
have changed in between). Inside the folder, :func:`safestream.scan.iter_files`
follows no symlinks, so nothing outside the root is read.

Results go to the ``scan_results`` table, unique per job and path, in
transactions of up to :data:`FLUSH_FILES` files. A worker killed mid-scan
loses at most the files of its last unflushed batch; the next attempt skips
every file that already has a result, and no file is ever recorded twice.

A file that matched a bank also becomes a check record with ``surface="scan"``,
written with its result, so ``CaseService.sync`` groups it into a case. Scans run
no classifier (a verdict carrying scores would be grouped by the same rule). The job may name whose stored
media it scans (``account_id``, ``username``, ``profile_url``); the record
carries them, and the file's path in its signals (``scan_path``) and reasons.
Its content id is derived from the job and path, so a retried job adds no
second record. Clean files and errors make no check record.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safestream.cases.model import CaseConfig, detection_kind
from safestream.engine.check import Engine, EngineOptions
from safestream.errors import ConfigError, InputError
from safestream.jobs.base import JobContext, PermanentJobError
from safestream.scan import ScanRecord, iter_files, scan
from safestream.signals.pdq import DEFAULT_MIN_QUALITY
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from safestream.store.scans import ScanResultRepository, path_digest

if TYPE_CHECKING:
    from safestream.store.jobs import Job

log = logging.getLogger(__name__)

#: The job kind of batch scans.
JOB_KIND = "batch_scan"
ENV_SCAN_ROOTS = "SAFESTREAM_SCAN_ROOTS"
ENV_SCAN_PROCESSES = "SAFESTREAM_SCAN_PROCESSES"
#: Files stored per transaction (and so lost at most by a killed worker).
FLUSH_FILES = 200
#: ... or after this many seconds, whichever comes first.
FLUSH_INTERVAL_S = 2.0
MAX_ATTEMPTS = 5
#: The check-record surface of batch-scan detections.
SURFACE = "scan"
#: Optional job fields naming whose stored media is scanned, and their length limits.
CONTEXT_FIELDS: dict[str, int] = {"account_id": 200, "username": 200, "profile_url": 2048}
_CONTENT_IDS = uuid.UUID("9b7f6f0e-3c1d-5a8e-9f43-5ca9b7c1d2e0")


class ScanPathError(InputError):
    """A scan path that is not allowed (no roots configured, or outside them)."""


def scan_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The configured scan roots (resolved), from ``SAFESTREAM_SCAN_ROOTS``."""
    env = os.environ if environ is None else environ
    roots = []
    for part in env.get(ENV_SCAN_ROOTS, "").split(":"):
        part = part.strip()
        if not part:
            continue
        root = Path(part).expanduser()
        if not root.is_absolute():
            raise ConfigError(f"{ENV_SCAN_ROOTS} entries must be absolute paths, got {part!r}")
        roots.append(root.resolve())
    return roots


def resolve_scan_path(raw: str, roots: list[Path]) -> Path:
    """The real path of ``raw`` if it lies inside a root; ScanPathError or InputError if not.

    ``raw`` must be absolute. It is resolved (every symlink followed, ``..``
    collapsed) before the check, so neither ``..`` nor a symlink leads out.
    """
    if not roots:
        raise ScanPathError(
            f"batch scans are disabled on this server: set {ENV_SCAN_ROOTS} to the "
            "colon-separated folders that may be scanned"
        )
    if "\x00" in raw:
        raise InputError("the scan path contains a NUL character")
    path = Path(raw)
    if not path.is_absolute():
        raise InputError(f"the scan path must be absolute, got {raw[:200]!r}")
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise InputError(f"the scan path {raw[:200]!r} does not exist") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, permissions
        raise InputError(f"the scan path {raw[:200]!r} cannot be resolved: {exc}") from None
    if not any(real == root or real.is_relative_to(root) for root in roots):
        raise ScanPathError(
            f"the scan path {raw[:200]!r} is outside the folders this server may scan "
            f"({ENV_SCAN_ROOTS})"
        )
    return real


def scan_context(payload: Mapping[str, Any]) -> dict[str, str | None]:
    """The job's ``account_id``, ``username`` and ``profile_url`` (each optional).

    Raises InputError for a value that is not a non-empty string or is too long.
    """
    out: dict[str, str | None] = {}
    for name, limit in CONTEXT_FIELDS.items():
        value = payload.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InputError(f"the scan's {name} must be a non-empty string, got {value!r:.100}")
        if value is not None and len(value) > limit:
            raise InputError(f"the scan's {name} is longer than {limit} characters")
        out[name] = value
    url = out["profile_url"]
    if url is not None and not url.startswith(("https://", "http://")):
        raise InputError(f"the scan's profile_url must be an http(s) URL, got {url[:100]!r}")
    return out


def scan_content_id(job_id: int, path: str) -> str:
    """The check record's content id of a file of a scan job (the same on every attempt)."""
    return str(uuid.uuid5(_CONTENT_IDS, f"{job_id}:{path_digest(path)}"))


class BatchScanHandler:
    """The job handler that scans a folder and stores a result per file.

    The bank index is built once per worker process (at its first scan) and
    refreshed from the change log before each job; scan jobs of one worker
    process run one at a time (the index is shared), other kinds alongside.
    """

    kind: str = JOB_KIND

    def __init__(
        self,
        store: Store,
        *,
        roots: list[Path] | None = None,
        processes: int = 1,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if processes < 1:
            raise ConfigError(f"{ENV_SCAN_PROCESSES} must be at least 1")
        self.store = store
        self.results = ScanResultRepository(store)
        self._roots = roots
        self._environ = environ
        self.processes = processes
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, store: Store, environ: Mapping[str, str] | None = None) -> BatchScanHandler:
        """The handler configured by ``SAFESTREAM_SCAN_ROOTS`` and ``_SCAN_PROCESSES``."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_SCAN_PROCESSES, "").strip()
        try:
            processes = int(raw) if raw else 1
        except ValueError:
            raise ConfigError(f"{ENV_SCAN_PROCESSES} must be an integer, got {raw!r}") from None
        scan_roots(env)  # a bad root stops the worker at start-up
        return cls(store, processes=processes, environ=env)

    def roots(self) -> list[Path]:
        """The roots in force now (read at each job, so they can change without a restart)."""
        return self._roots if self._roots is not None else scan_roots(self._environ)

    def run(self, job: Job, ctx: JobContext) -> dict[str, Any]:
        """Scan the job's path, skipping files done by an earlier attempt; returns a summary."""
        p = job.payload
        try:
            max_pixels = p.get("max_pixels")
            options = EngineOptions(
                mode=str(p.get("mode", "exact")),
                dihedral=bool(p.get("dihedral", False)),
                min_quality=int(p.get("min_quality", DEFAULT_MIN_QUALITY)),
                max_pixels=None if max_pixels is None else int(max_pixels),
            )
            root = resolve_scan_path(str(p["path"]), self.roots())
            context = scan_context(p)
            threshold = CaseConfig.from_env().classifier_threshold
        except (KeyError, TypeError, ValueError, InputError, ConfigError) as exc:
            raise PermanentJobError(f"batch scan refused: {exc}") from None
        with self._lock:
            engine = self._engine_for(options)
            return self._scan(job, ctx, engine, root, context, threshold)

    def _engine_for(self, options: EngineOptions) -> Engine:
        if self._engine is None:
            self._engine = Engine(BankRepository(self.store), options)
        else:
            self._engine.refresh()
            self._engine.options = options
        return self._engine

    def _scan(
        self,
        job: Job,
        ctx: JobContext,
        engine: Engine,
        root: Path,
        context: dict[str, str | None],
        threshold: float,
    ) -> dict[str, Any]:
        done = self.results.done_digests(job.id)
        skipped = len(done)
        todo = (f for f in iter_files([root]) if path_digest(str(f)) not in done)
        batch: list[tuple[str, str, dict[str, Any]]] = []
        checks: dict[str, dict[str, Any]] = {}
        flushed_at = time.monotonic()
        scanned = 0

        def flush() -> None:
            nonlocal batch, checks, flushed_at
            ctx.check()  # taken over: stop before writing (the other attempt will)
            self.results.add(job.id, batch, checks=checks)
            batch, checks = [], {}
            flushed_at = time.monotonic()
            ctx.progress({"path": str(root), "files_done": skipped + scanned})

        def on_record(record: ScanRecord) -> None:
            nonlocal scanned
            batch.append((record.path, record.outcome, record.to_dict()))
            fields = self._check_fields(job, record, context, threshold)
            if fields is not None:
                checks[record.path] = fields
            scanned += 1
            if len(batch) >= FLUSH_FILES or time.monotonic() - flushed_at >= FLUSH_INTERVAL_S:
                flush()

        scan(engine, todo, workers=self.processes, on_record=on_record)
        flush()
        counts = self.results.counts(job.id)
        return {
            "path": str(root),
            "files": sum(counts.values()),
            "outcomes": counts,
            "resumed_after_files": skipped,
        }

    @staticmethod
    def _check_fields(
        job: Job, record: ScanRecord, context: dict[str, str | None], threshold: float
    ) -> dict[str, Any] | None:
        """The check record of a detection (a match or a classifier flag); None otherwise."""
        v = record.verdict
        if v is None:
            return None
        kind = detection_kind(
            outcome=v.outcome, surface=SURFACE, scores=v.scores, threshold=threshold
        )
        if kind is None:
            return None
        body = v.to_dict()
        key_id = job.payload.get("api_key_id")
        return {
            "content_id": scan_content_id(job.id, record.path),
            **context,
            "ip_address": None,
            "source_port": None,
            "client_timestamp": None,
            "surface": SURFACE,
            "api_key_id": key_id if isinstance(key_id, int) else None,
            "outcome": v.outcome,
            "signals": {**body["signals"], "scan_path": record.path, "scan_job_id": job.id},
            "matches": body["matches"],
            "reasons": [*body["reasons"], f"batch scan job {job.id} found {record.path}"],
            "scores": body["scores"],
        }


__all__ = [
    "ENV_SCAN_ROOTS",
    "JOB_KIND",
    "SURFACE",
    "BatchScanHandler",
    "ScanPathError",
    "resolve_scan_path",
    "scan_content_id",
    "scan_context",
    "scan_roots",
]
