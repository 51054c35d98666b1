"""The ``bank_import`` job: a hash list uploaded through the API, imported by a worker.

The API stores the upload under the upload directory, content-addressed
(``<sha256>.list``, written to a temporary name and renamed, so a reader
never sees half a file), and enqueues a job naming the bank, the content's
SHA-256, the format and ``skip_invalid``; never a path. The idempotency key is
built from those four, so uploading the same list again with the same options
gives the same job (and does not import it twice).

The worker runs :func:`~safestream.banks.importer.import_file`, which stages
the list chunk by chunk, each chunk committed with its checkpoint, and
publishes it into the bank in one transaction. A worker killed mid-import
therefore leaves nothing half-published; the next claim of the job resumes
from the checkpoint, and the bank ends with every entry exactly once.

**Several hosts.** The upload directory must be shared storage (NFS, a
mounted volume) that the API processes and every worker see at the same path
(``SAFESTREAM_UPLOAD_DIR``). Lists of millions of lines are hundreds of
megabytes; streaming them through files keeps them out of the database and out
of memory. A worker that cannot find an upload retries (it may be racing the
API's rename) and dead-letters the job with a message saying so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from safestream.banks.importer import DEFAULT_CHUNK_LINES, import_file
from safestream.errors import ConfigError, ConflictError, InputError, NotFoundError
from safestream.jobs.base import JobContext, PermanentJobError, RetryableJobError
from safestream.store.banks import BankRepository
from safestream.store.db import Store, default_data_dir

if TYPE_CHECKING:
    from safestream.store.jobs import Job

log = logging.getLogger(__name__)

#: The job kind of bank imports.
JOB_KIND = "bank_import"
ENV_UPLOAD_DIR = "SAFESTREAM_UPLOAD_DIR"
ENV_CHUNK_LINES = "SAFESTREAM_IMPORT_CHUNK_LINES"
#: Attempts before an import job is dead-lettered (a malformed list dies at once).
MAX_ATTEMPTS = 5

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def upload_dir(store: Store, environ: Mapping[str, str] | None = None) -> Path:
    """Where uploaded hash lists wait for their job: ``$SAFESTREAM_UPLOAD_DIR``.

    Default: ``uploads`` next to the SQLite database (so ``--data-dir`` moves
    it too), or in the data directory with PostgreSQL. With several hosts it
    must be shared storage mounted at the same path on all of them.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_UPLOAD_DIR, "").strip()
    if raw:
        return Path(raw).expanduser()
    database = store.engine.url.database
    if store.dialect == "sqlite" and database and database != ":memory:":
        return Path(database).parent / "uploads"
    return default_data_dir() / "uploads"


def upload_path(directory: Path, content_sha256: str) -> Path:
    """The stored upload with this digest (the digest is checked: no path from a caller)."""
    if not _SHA256.match(content_sha256):
        raise InputError(f"not a SHA-256 digest: {content_sha256[:80]!r}")
    return directory / f"{content_sha256}.list"


def idempotency_key(bank: str, content_sha256: str, list_format: str | None, skip: bool) -> str:
    """One job per bank, content, format and ``skip_invalid``."""
    ident = json.dumps([bank, content_sha256, list_format or "auto", skip], separators=(",", ":"))
    return f"{JOB_KIND}:{hashlib.sha256(ident.encode()).hexdigest()}"


class UploadSpool:
    """Write an upload to a temporary file in the upload directory, hashing as it goes.

    ``store()`` renames it to ``<sha256>.list`` (atomic; the same content under
    the same name, so a concurrent identical upload is harmless); leaving the
    block without ``store()`` deletes the temporary file.
    """

    def __init__(self, directory: Path, limit_bytes: int) -> None:
        self.directory = directory
        self.limit_bytes = limit_bytes
        self.size_bytes = 0
        self._sha = hashlib.sha256()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the upload directory {directory}: {exc.strerror}; "
                f"set {ENV_UPLOAD_DIR} to a writable (and, with several hosts, shared) directory"
            ) from exc
        fd, name = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=directory)
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")

    def __enter__(self) -> UploadSpool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()

    def write(self, data: bytes) -> None:
        """Append a piece of the upload; InputError once it is over the limit."""
        self.size_bytes += len(data)
        if self.size_bytes > self.limit_bytes:
            raise InputError(f"hash list is larger than the limit of {self.limit_bytes} bytes")
        self._sha.update(data)
        self._file.write(data)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of what was written so far."""
        return self._sha.hexdigest()

    def store(self) -> Path:
        """Flush to disk and move into place as ``<sha256>.list``; returns that path."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = upload_path(self.directory, self.sha256)
        os.replace(self._tmp, target)
        return target

    def discard(self) -> None:
        """Delete the temporary file (nothing once stored)."""
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


def _safe_name(name: Any) -> str:
    """The uploaded file's name, for messages only (never used as a path)."""
    text = str(name or "upload")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c if c.isprintable() else "?" for c in text)[:200] or "upload"


class BankImportHandler:
    """The job handler that imports a stored upload into a bank."""

    kind: str = JOB_KIND

    def __init__(
        self, store: Store, directory: Path, *, chunk_lines: int = DEFAULT_CHUNK_LINES
    ) -> None:
        if chunk_lines < 1:
            raise ConfigError(f"{ENV_CHUNK_LINES} must be at least 1")
        self.banks = BankRepository(store)
        self.directory = directory
        self.chunk_lines = chunk_lines

    @classmethod
    def from_env(cls, store: Store, environ: Mapping[str, str] | None = None) -> BankImportHandler:
        """The handler configured by ``SAFESTREAM_UPLOAD_DIR`` and ``_IMPORT_CHUNK_LINES``."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_CHUNK_LINES, "").strip()
        try:
            chunk_lines = int(raw) if raw else DEFAULT_CHUNK_LINES
        except ValueError:
            raise ConfigError(f"{ENV_CHUNK_LINES} must be an integer, got {raw!r}") from None
        return cls(store, upload_dir(store, env), chunk_lines=chunk_lines)

    def run(self, job: Job, ctx: JobContext) -> dict[str, Any]:
        """Import (or resume importing) the job's upload; returns the import's counts."""
        p = job.payload
        try:
            bank = str(p["bank"])
            digest = str(p["upload_sha256"])
            list_format = p.get("format")
            skip_invalid = bool(p.get("skip_invalid", False))
            path = upload_path(self.directory, digest)
        except (KeyError, InputError) as exc:
            raise PermanentJobError(f"malformed bank_import job payload: {exc}") from None
        earlier = self._published_earlier(job)
        if earlier is not None:
            self._cleanup(path, job)
            return earlier
        if not path.is_file():
            raise RetryableJobError(
                f"the uploaded list {path.name} is not in {self.directory}: with several "
                f"hosts, {ENV_UPLOAD_DIR} must be shared storage seen by the API and every "
                "worker; upload the list again if it was removed"
            )
        import_id = 0

        def begun(new_id: int, resume_line: int) -> None:
            nonlocal import_id
            import_id = new_id
            ctx.progress({"import_id": new_id, "resumed_from_line": resume_line})

        def progressed(line: int) -> None:
            ctx.progress({"import_id": import_id, "lines_done": line})

        try:
            result = import_file(
                self.banks,
                bank,
                path,
                list_format=None if list_format is None else str(list_format),
                skip_invalid=skip_invalid,
                chunk_lines=self.chunk_lines,
                on_progress=progressed,
                on_begin=begun,
                source_name=_safe_name(p.get("filename")),
            )
        except ConflictError as exc:
            # Another job of the same content published the shared staging
            # first (imports resume by bank and content): run again, adding nothing twice.
            raise RetryableJobError(str(exc)) from None
        except InputError as exc:
            # A malformed line (FILE:LINE: reason), an unknown bank or format:
            # retrying cannot fix it, and the importer added nothing.
            raise PermanentJobError(str(exc)) from None
        self._cleanup(path, job)
        return result.to_dict()

    def _published_earlier(self, job: Job) -> dict[str, Any] | None:
        """The counts of this job's import if an earlier attempt published it.

        That attempt died between publishing and recording its success (the
        import's id is in the job's progress); running it again would find
        every entry present and report nothing added.
        """
        import_id = (job.result or {}).get("import_id")
        if not isinstance(import_id, int) or import_id < 1:
            return None
        try:
            status = self.banks.import_status(import_id)
        except NotFoundError:
            return None
        if status["status"] != "done":
            return None
        return {
            "import_id": import_id,
            "bank": job.payload.get("bank"),
            "lines_read": status["lines_done"],
            "entries_added": status["entries_added"],
            "duplicates": status["entries_staged"] - status["entries_added"],
            "errors": [],
        }

    def _cleanup(self, path: Path, job: Job) -> None:
        # Keep the upload while another job (another bank, other options) still
        # needs the same content. A job enqueued right after this check finds
        # the file again: the API renames its copy into place after enqueueing.
        from safestream.store.jobs import QUEUED, RUNNING, JobRepository

        jobs = JobRepository(self.banks.store)
        for status in (QUEUED, RUNNING):
            for other in jobs.recent(status, limit=10_000, kinds=(JOB_KIND,)):
                if other.id != job.id and other.payload.get("upload_sha256") == path.stem:
                    return
        path.unlink(missing_ok=True)


__all__ = [
    "ENV_CHUNK_LINES",
    "ENV_UPLOAD_DIR",
    "JOB_KIND",
    "BankImportHandler",
    "UploadSpool",
    "idempotency_key",
    "upload_dir",
    "upload_path",
]
