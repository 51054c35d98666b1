"""Bank routes: CRUD, entries, streamed import and export."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from safestream.api.deps import ServiceState, roles, state
from safestream.api.routes_jobs import accepted
from safestream.api.schemas import (
    BankIn,
    BankOut,
    BankPatch,
    EntriesAdded,
    EntriesIn,
    EntriesPage,
    EntriesRemoveIn,
    JobAccepted,
)
from safestream.auth import Role
from safestream.banks.formats import CSVFormat, HashListFormat, HashRecord, get_format
from safestream.banks.importer import import_file
from safestream.errors import InputError
from safestream.jobs import bank_import
from safestream.signals.base import get_signal_type
from safestream.store.jobs import DONE, JobRepository

router = APIRouter(prefix="/v1/banks", tags=["banks"])
State = Annotated[ServiceState, Depends(state)]
ListFormat = Literal["te", "csv", "md5", "sha1", "sha256", "pdq"]
READ = roles(Role.CURATOR, Role.AUDITOR)
WRITE = roles(Role.CURATOR)


@router.get("", response_model=list[BankOut], summary="List banks", **READ)
def list_banks(st: State) -> list[dict[str, Any]]:
    """Every bank with its settings and entry count."""
    return [b.to_dict() for b in st.banks.list_banks()]


@router.post("", response_model=BankOut, status_code=201, summary="Create a bank", **WRITE)
def create_bank(body: BankIn, st: State) -> dict[str, Any]:
    """A new, empty bank."""
    return st.banks.create_bank(**body.model_dump()).to_dict()


@router.get("/{name}", response_model=BankOut, summary="Get a bank", **READ)
def get_bank(name: str, st: State) -> dict[str, Any]:
    """One bank."""
    return st.banks.get_bank(name).to_dict()


@router.patch("/{name}", response_model=BankOut, summary="Change a bank's settings", **WRITE)
def update_bank(name: str, body: BankPatch, st: State) -> dict[str, Any]:
    """Threshold, enabled, allow-list flag, description, source."""
    changes = body.model_dump(exclude_none=True)
    return st.banks.update_bank(name, **changes).to_dict()


@router.delete("/{name}", status_code=204, summary="Delete a bank and its entries", **WRITE)
def delete_bank(name: str, st: State) -> None:
    """Deletes every entry too (logged, so every process stops matching them)."""
    st.banks.delete_bank(name)


@router.get("/{name}/entries", response_model=EntriesPage, summary="List entries", **READ)
def list_entries(
    name: str,
    st: State,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """A page of entries in id order."""
    page = st.banks.entries_page(name, after_id=after_id, limit=limit)
    return {
        "entries": [e.to_dict() for e in page],
        "next_after_id": page[-1].id if len(page) == limit else None,
    }


@router.post(
    "/{name}/entries", response_model=EntriesAdded, status_code=201, summary="Add entries", **WRITE
)
def add_entries(name: str, body: EntriesIn, st: State) -> dict[str, Any]:
    """Add entries (values already in the bank are counted as duplicates)."""
    records = []
    for i, e in enumerate(body.entries):
        try:
            signal_type = get_signal_type(e.signal_type)
            value = signal_type.parse(e.value)
        except InputError as exc:
            raise InputError(f"entries[{i}]: {exc}") from None
        records.append(
            HashRecord(signal_type.name, value, e.external_id, e.source, tuple(e.labels))
        )
    ids, duplicates = st.banks.add_entries(name, records)
    return {"added_ids": ids, "duplicates": duplicates}


@router.post("/{name}/entries/remove", summary="Remove entries by id or value", **WRITE)
def remove_entries(name: str, body: EntriesRemoveIn, st: State) -> dict[str, int]:
    """Remove entries; unknown ones are ignored. Returns how many went."""
    if not body.entry_ids and not body.hashes:
        raise InputError("give entry_ids or hashes to remove")
    pairs = []
    for i, h in enumerate(body.hashes):
        try:
            signal_type = get_signal_type(h.signal_type)
            pairs.append((signal_type.name, signal_type.parse(h.value)))
        except InputError as exc:
            raise InputError(f"hashes[{i}]: {exc}") from None
    return {"removed": st.banks.remove_entries(name, entry_ids=body.entry_ids, values=pairs)}


@router.post(
    "/{name}/import",
    summary="Import a hash list (all or nothing)",
    responses={202: {"model": JobAccepted, "description": "queued as a job (async=true)"}},
    **WRITE,
)
async def import_list(
    name: str,
    st: State,
    file: Annotated[UploadFile, File(description="the hash list")],
    format: Annotated[ListFormat | None, Query()] = None,
    skip_invalid: Annotated[bool, Query()] = False,
    run_async: Annotated[
        bool, Query(alias="async", description="queue a bank_import job; answer 202")
    ] = False,
) -> Any:
    """Same formats and guarantees as ``safestream bank import``.

    A malformed line gives 400 naming the line, and nothing is added. With
    ``async=true`` the list is stored and a ``bank_import`` job queued for
    ``safestream worker``: 202 with the job and ``Location: /v1/jobs/{id}``;
    uploading the same list with the same options again gives the same job.
    """
    st.banks.get_bank(name)
    if run_async:
        return await _queue_import(name, st, file, format, skip_invalid)
    limit = st.settings.max_upload_bytes
    with tempfile.TemporaryDirectory(prefix="safestream-import-") as tmp:
        # The upload's own name is not trusted as a path.
        suffix = ".csv" if (file.filename or "").lower().endswith(".csv") else ".txt"
        path = Path(tmp) / f"upload{suffix}"
        size = 0
        with path.open("wb") as out:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise InputError(f"hash list is larger than the limit of {limit} bytes")
                out.write(chunk)
        result = await run_in_threadpool(
            import_file, st.banks, name, path, list_format=format, skip_invalid=skip_invalid
        )
    out_dict = result.to_dict()
    out_dict["source"] = file.filename or "upload"
    return out_dict


@router.get(
    "/{name}/export",
    summary="Export a bank as a hash list (streamed)",
    response_class=StreamingResponse,
    **READ,
)
def export_list(
    name: str, st: State, format: Annotated[ListFormat, Query()] = "te"
) -> StreamingResponse:
    """Streams the bank in the chosen format."""
    st.banks.get_bank(name)
    fmt = get_format(format)

    def lines() -> Iterator[str]:
        batch: list[HashRecord] = []
        first = True
        for e in st.banks.iter_entries(name):
            batch.append(HashRecord(e.signal_type, e.value, e.external_id, e.source, e.labels))
            if len(batch) >= 1000:
                yield _render(fmt, batch, header=first)
                batch, first = [], False
        if batch or first:
            yield _render(fmt, batch, header=first)

    media = "text/csv" if format == "csv" else "text/plain"
    return StreamingResponse(
        lines(),
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}.txt"'},
    )


async def _queue_import(
    name: str, st: State, file: UploadFile, list_format: str | None, skip_invalid: bool
) -> JSONResponse:
    directory = bank_import.upload_dir(st.store)
    with bank_import.UploadSpool(directory, st.settings.max_upload_bytes) as spool:
        while chunk := await file.read(1 << 20):
            spool.write(chunk)
        digest = spool.sha256
        payload = {
            "bank": name,
            "upload_sha256": digest,
            "format": list_format,
            "skip_invalid": skip_invalid,
            "filename": file.filename or "upload",
            "size_bytes": spool.size_bytes,
        }
        job, created = await run_in_threadpool(
            JobRepository(st.store).enqueue,
            bank_import.JOB_KIND,
            payload,
            idempotency_key=bank_import.idempotency_key(name, digest, list_format, skip_invalid),
            max_attempts=bank_import.MAX_ATTEMPTS,
        )
        # Moved into place after the job exists, so a worker finishing another
        # job of the same content cannot delete it under this one (see
        # BankImportHandler._cleanup). A finished job needs no copy.
        if job.status != DONE:
            await run_in_threadpool(spool.store)
    return accepted(job, created)


def _render(fmt: HashListFormat, batch: list[HashRecord], *, header: bool) -> str:
    buf = io.StringIO()
    fmt.write(batch, buf)
    text = buf.getvalue()
    if not header and isinstance(fmt, CSVFormat):
        text = text.split("\n", 1)[1]  # the header row only once
    return text
