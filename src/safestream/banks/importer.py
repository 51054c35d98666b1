"""Transactional, resumable hash-list imports.

An import streams the list, stages parsed entries in chunks (each chunk and
the checkpoint commit together), then publishes all staged entries into the
bank in one transaction. Staged entries are invisible to matching, so a
failed import leaves the bank as it was; a crashed import resumes from its
checkpoint when the same content is imported into the same bank again.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from pathlib import Path

from safestream.banks.formats import (
    HashRecord,
    LineError,
    ParsedLine,
    detect_format,
    get_format,
)
from safestream.banks.model import ImportResult
from safestream.errors import HashListError, InputError
from safestream.store.banks import BankRepository

log = logging.getLogger(__name__)

#: Lines per staging transaction (and so per checkpoint).
DEFAULT_CHUNK_LINES = 5000
#: At most this many line errors are kept when errors are skipped.
MAX_REPORTED_ERRORS = 1000


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _open_text(path: Path) -> io.TextIOWrapper:
    # Hash lists are ASCII; a list that is not UTF-8 is reported per line
    # through the replacement character rather than crashing the import.
    return open(path, encoding="utf-8", errors="replace", newline="")


def import_file(
    repo: BankRepository,
    bank: str,
    path: Path,
    *,
    list_format: str | None = None,
    skip_invalid: bool = False,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
    on_progress: Callable[[int], None] | None = None,
    source_name: str | None = None,
    on_begin: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import the hash list at ``path`` into ``bank``.

    With ``skip_invalid=False`` (the default) the first malformed line stops
    the import with a :class:`HashListError` naming the file and line, and
    nothing is added. With ``skip_invalid=True`` malformed lines are reported
    in the result and the rest is imported.

    A crash or interrupt (KeyboardInterrupt, a killed process) between chunks
    leaves the import resumable: importing the same content again continues
    after the last committed chunk. Any other error marks the import failed.

    ``source_name`` names the list in error messages and the import record
    (default: ``path``), e.g. the name an uploaded file had. ``on_begin`` is
    called with the import's id and the line it resumes after (0: a new one).
    """
    if not path.exists():
        raise InputError(f"hash list {path} does not exist")
    if not path.is_file():
        raise InputError(f"hash list {path} is not a regular file")
    if chunk_lines < 1:
        raise InputError("chunk_lines must be at least 1")
    source = source_name or str(path)
    if list_format is None:
        with _open_text(path) as f:
            list_format = detect_format(f.read(64 * 1024), path.name)
    fmt = get_format(list_format)
    repo.get_bank(bank)  # fail early on an unknown bank
    import_id, resume_line = repo.begin_import(
        bank, source_name=source, content_sha256=_digest(path), list_format=list_format
    )
    if resume_line:
        log.info("resuming import", extra={"import_id": import_id, "from_line": resume_line + 1})
    if on_begin:
        on_begin(import_id, resume_line)
    errors: list[str] = []
    chunk: list[tuple[int, HashRecord]] = []
    last_line = resume_line
    try:
        with _open_text(path) as stream:
            for item in fmt.parse(stream):
                if item.line_number <= resume_line:
                    continue
                if isinstance(item, LineError):
                    if not skip_invalid:
                        raise item.to_error(source)
                    if len(errors) < MAX_REPORTED_ERRORS:
                        errors.append(str(item.to_error(source)))
                    continue
                assert isinstance(item, ParsedLine)
                chunk.append((item.line_number, item.record))
                last_line = item.line_number
                if len(chunk) >= chunk_lines:
                    repo.stage_chunk(import_id, chunk, last_line)
                    chunk = []
                    if on_progress:
                        on_progress(last_line)
            repo.stage_chunk(import_id, chunk, last_line)
    except HashListError as exc:
        repo.fail_import(import_id, str(exc))
        raise
    except Exception as exc:
        repo.fail_import(import_id, f"{type(exc).__name__}: {exc}")
        raise
    added, staged = repo.publish_import(import_id)
    return ImportResult(
        import_id=import_id,
        bank=bank,
        source_name=source,
        list_format=list_format,
        lines_read=last_line,
        entries_added=added,
        duplicates=staged - added,
        resumed_from_line=resume_line,
        errors=tuple(errors),
    )
