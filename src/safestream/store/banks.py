"""SQL for banks, entries, the change log and imports."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import BigInteger, and_, delete, exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from safestream.banks.formats import HashRecord
from safestream.banks.model import BANK_NAME_PATTERN, Bank, BankEntry, EntryChange
from safestream.errors import ConflictError, InputError, NotFoundError
from safestream.store.db import Store, fresh_xid, snapshot_xids
from safestream.store.models import (
    BankEntryRow,
    BankRow,
    EntryChangeRow,
    ImportRow,
    StagedEntryRow,
    utcnow,
)

MAX_THRESHOLD = 128


def _bank(row: BankRow, entry_count: int = 0) -> Bank:
    return Bank(
        id=row.id,
        name=row.name,
        description=row.description,
        source=row.source,
        enabled=row.enabled,
        is_allow_list=row.is_allow_list,
        pdq_threshold=row.pdq_threshold,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        entry_count=entry_count,
    )


def _entry(row: BankEntryRow, bank_name: str) -> BankEntry:
    return BankEntry(
        id=row.id,
        bank_id=row.bank_id,
        bank_name=bank_name,
        signal_type=row.signal_type,
        value=row.value,
        source=row.source,
        external_id=row.external_id,
        labels=tuple(row.labels or ()),
        added_at=row.added_at,
    )


def validate_bank_name(name: str) -> str:
    """Return ``name`` if it is a valid bank name, else raise InputError."""
    if not re.match(BANK_NAME_PATTERN, name):
        raise InputError(
            f"invalid bank name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_threshold(threshold: int) -> int:
    """Return ``threshold`` if it is a usable PDQ distance threshold."""
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise InputError(
            f"PDQ threshold must be between 0 and {MAX_THRESHOLD} bits, got {threshold} "
            "(Meta recommends 31)"
        )
    return threshold


class BankRepository:
    """Bank and entry operations, each in its own transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- banks -----------------------------------------------------------------

    def _row(self, session: Session, name: str) -> BankRow:
        row = session.scalar(select(BankRow).where(BankRow.name == name))
        if row is None:
            raise NotFoundError(f"no bank named {name!r}; list banks with 'safestream bank list'")
        return row

    def create_bank(
        self,
        name: str,
        *,
        description: str = "",
        source: str = "internal",
        is_allow_list: bool = False,
        pdq_threshold: int = 31,
        enabled: bool = True,
    ) -> Bank:
        """Create a bank; ConflictError if the name is taken."""
        validate_bank_name(name)
        validate_threshold(pdq_threshold)
        now = utcnow()
        try:
            with self.store.session() as session:
                row = BankRow(
                    name=name,
                    description=description,
                    source=source,
                    enabled=enabled,
                    is_allow_list=is_allow_list,
                    pdq_threshold=pdq_threshold,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                return _bank(row)
        except IntegrityError:
            raise ConflictError(f"a bank named {name!r} already exists") from None

    def list_banks(self, *, with_counts: bool = True) -> list[Bank]:
        """All banks by name, with their entry counts unless ``with_counts`` is False."""
        with self.store.session() as session:
            if not with_counts:
                return [_bank(r) for r in session.scalars(select(BankRow).order_by(BankRow.name))]
            counts = dict(
                session.execute(
                    select(BankEntryRow.bank_id, func.count()).group_by(BankEntryRow.bank_id)
                ).all()
            )
            rows = session.scalars(select(BankRow).order_by(BankRow.name)).all()
            return [_bank(r, int(counts.get(r.id, 0))) for r in rows]

    def get_bank(self, name: str) -> Bank:
        """One bank by name, with its entry count."""
        with self.store.session() as session:
            row = self._row(session, name)
            count = session.scalar(
                select(func.count()).select_from(BankEntryRow).where(BankEntryRow.bank_id == row.id)
            )
            return _bank(row, int(count or 0))

    def update_bank(self, name: str, /, **changes: Any) -> Bank:
        """Change settings: description, source, enabled, is_allow_list, pdq_threshold."""
        allowed = {"description", "source", "enabled", "is_allow_list", "pdq_threshold"}
        unknown = set(changes) - allowed
        if unknown:
            raise InputError(f"cannot change {', '.join(sorted(unknown))} of a bank")
        if changes.get("pdq_threshold") is not None:
            validate_threshold(int(changes["pdq_threshold"]))
        with self.store.session() as session:
            row = self._row(session, name)
            for key, value in changes.items():
                if value is not None:
                    setattr(row, key, value)
            row.version += 1
            row.updated_at = utcnow()
        return self.get_bank(name)

    def delete_bank(self, name: str) -> None:
        """Delete a bank and its entries (logged as removals)."""
        with self.store.session() as session:
            row = self._row(session, name)
            self._log_removals(session, select(BankEntryRow).where(BankEntryRow.bank_id == row.id))
            session.execute(delete(BankEntryRow).where(BankEntryRow.bank_id == row.id))
            session.delete(row)

    # -- entries ---------------------------------------------------------------

    def add_entries(self, name: str, records: Iterable[HashRecord]) -> tuple[list[int], int]:
        """Add records to a bank; return (ids of new entries, number of duplicates)."""
        with self.store.session() as session:
            bank = self._row(session, name)
            new_ids: list[int] = []
            duplicates = 0
            seen: set[tuple[str, str]] = set()
            for record in records:
                key = (record.signal_type, record.value)
                if key in seen or session.scalar(
                    select(BankEntryRow.id).where(
                        BankEntryRow.bank_id == bank.id,
                        BankEntryRow.signal_type == record.signal_type,
                        BankEntryRow.value == record.value,
                    )
                ):
                    duplicates += 1
                    continue
                seen.add(key)
                row = BankEntryRow(
                    bank_id=bank.id,
                    signal_type=record.signal_type,
                    value=record.value,
                    source=record.source,
                    external_id=record.external_id,
                    labels=list(record.labels),
                    added_at=utcnow(),
                )
                session.add(row)
                session.flush()
                new_ids.append(row.id)
                session.add(
                    EntryChangeRow(
                        entry_id=row.id,
                        bank_id=bank.id,
                        op="add",
                        signal_type=row.signal_type,
                        value=row.value,
                        changed_at=utcnow(),
                    )
                )
            if new_ids:
                bank.version += 1
                bank.updated_at = utcnow()
            return new_ids, duplicates

    def _log_removals(self, session: Session, query: Any) -> int:
        rows = session.scalars(query).all()
        now = utcnow()
        for row in rows:
            session.add(
                EntryChangeRow(
                    entry_id=row.id,
                    bank_id=row.bank_id,
                    op="remove",
                    signal_type=row.signal_type,
                    value=row.value,
                    changed_at=now,
                )
            )
        return len(rows)

    def remove_entries(
        self,
        name: str,
        *,
        entry_ids: Sequence[int] = (),
        values: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Remove entries by id or by (signal_type, value); return how many went."""
        with self.store.session() as session:
            bank = self._row(session, name)
            conditions: list[ColumnElement[bool]] = []
            if entry_ids:
                conditions.append(BankEntryRow.id.in_(list(entry_ids)))
            for signal_type, value in values:
                conditions.append(
                    and_(BankEntryRow.signal_type == signal_type, BankEntryRow.value == value)
                )
            removed = 0
            for condition in conditions:
                query = select(BankEntryRow).where(BankEntryRow.bank_id == bank.id, condition)
                count = self._log_removals(session, query)
                if count:
                    session.execute(
                        delete(BankEntryRow).where(BankEntryRow.bank_id == bank.id, condition)
                    )
                removed += count
            if removed:
                bank.version += 1
                bank.updated_at = utcnow()
            return removed

    def iter_entries(self, name: str, *, batch_size: int = 5000) -> Iterator[BankEntry]:
        """Stream a bank's entries in id order (keyset pagination, constant memory)."""
        bank = self.get_bank(name)
        last_id = 0
        while True:
            with self.store.session() as session:
                rows = session.scalars(
                    select(BankEntryRow)
                    .where(BankEntryRow.bank_id == bank.id, BankEntryRow.id > last_id)
                    .order_by(BankEntryRow.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            for row in rows:
                yield _entry(row, bank.name)
            last_id = rows[-1].id

    def entries_page(self, name: str, *, after_id: int = 0, limit: int = 1000) -> list[BankEntry]:
        """Up to ``limit`` entries of a bank with id > ``after_id``, in id order."""
        bank = self.get_bank(name)
        with self.store.session() as session:
            rows = session.scalars(
                select(BankEntryRow)
                .where(BankEntryRow.bank_id == bank.id, BankEntryRow.id > after_id)
                .order_by(BankEntryRow.id)
                .limit(limit)
            ).all()
            return [_entry(r, bank.name) for r in rows]

    def entries_by_ids(self, ids: Iterable[int]) -> dict[int, BankEntry]:
        """Entries (with their bank names) for the given ids; unknown ids are absent."""
        wanted = sorted(set(ids))
        out: dict[int, BankEntry] = {}
        with self.store.session() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = session.execute(
                    select(BankEntryRow, BankRow.name)
                    .join(BankRow, BankRow.id == BankEntryRow.bank_id)
                    .where(BankEntryRow.id.in_(chunk))
                ).all()
                for entry_row, bank_name in rows:
                    out[entry_row.id] = _entry(entry_row, bank_name)
        return out

    # -- change log ------------------------------------------------------------

    def max_change_seq(self) -> int:
        """Highest change-log sequence number (0 when empty)."""
        with self.store.session() as session:
            return int(session.scalar(select(func.max(EntryChangeRow.seq))) or 0)

    def changes_since(self, seq: int, *, limit: int = 100_000) -> list[EntryChange]:
        """Changes after ``seq`` in order, at most ``limit``."""
        with self.store.session() as session:
            rows = session.scalars(
                select(EntryChangeRow)
                .where(EntryChangeRow.seq > seq)
                .order_by(EntryChangeRow.seq)
                .limit(limit)
            ).all()
            return [
                EntryChange(r.seq, r.entry_id, r.bank_id, r.op, r.signal_type, r.value)
                for r in rows
            ]

    def changes_with_seqs(self, seqs: Sequence[int]) -> list[EntryChange]:
        """The changes with these sequence numbers that exist now, in order."""
        out: list[EntryChange] = []
        with self.store.session() as session:
            for start in range(0, len(seqs), 500):
                rows = session.scalars(
                    select(EntryChangeRow)
                    .where(EntryChangeRow.seq.in_(list(seqs[start : start + 500])))
                    .order_by(EntryChangeRow.seq)
                ).all()
                out.extend(
                    EntryChange(r.seq, r.entry_id, r.bank_id, r.op, r.signal_type, r.value)
                    for r in rows
                )
        return sorted(out, key=lambda c: c.seq)

    def change_seqs_between(self, low: int, high: int) -> list[int]:
        """Sequence numbers in the change log with low < seq <= high, ascending."""
        with self.store.session() as session:
            return list(
                session.scalars(
                    select(EntryChangeRow.seq)
                    .where(EntryChangeRow.seq > low, EntryChangeRow.seq <= high)
                    .order_by(EntryChangeRow.seq)
                ).all()
            )

    def snapshot_xids(self) -> tuple[int, int] | None:
        """The current snapshot's (xmin, xmax) on PostgreSQL, None elsewhere (change-log gaps).

        See :func:`safestream.store.db.snapshot_xids`.
        """
        with self.store.engine.connect() as conn:
            return snapshot_xids(conn)

    def fresh_xid(self) -> int | None:
        """A transaction id above every one assigned so far (PostgreSQL; None elsewhere).

        See :func:`safestream.store.db.fresh_xid`.
        """
        return fresh_xid(self.store.engine)

    def iter_all_entries(self, *, batch_size: int = 50_000) -> Iterator[tuple[int, int, str, str]]:
        """Stream (entry id, bank id, signal type, value) of every entry."""
        last_id = 0
        while True:
            with self.store.session() as session:
                rows = session.execute(
                    select(
                        BankEntryRow.id,
                        BankEntryRow.bank_id,
                        BankEntryRow.signal_type,
                        BankEntryRow.value,
                    )
                    .where(BankEntryRow.id > last_id)
                    .order_by(BankEntryRow.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            for r in rows:
                yield int(r[0]), int(r[1]), str(r[2]), str(r[3])
            last_id = int(rows[-1][0])

    # -- imports ---------------------------------------------------------------

    def begin_import(
        self, name: str, *, source_name: str, content_sha256: str, list_format: str
    ) -> tuple[int, int]:
        """Start or resume an import of this content into a bank.

        Returns ``(import_id, lines_done)``; ``lines_done`` > 0 when a previous
        run of the same content stopped halfway and is resumed.
        """
        with self.store.session() as session:
            bank = self._row(session, name)
            row = session.scalar(
                select(ImportRow)
                .where(
                    ImportRow.bank_id == bank.id,
                    ImportRow.content_sha256 == content_sha256,
                    ImportRow.list_format == list_format,
                    ImportRow.status == "staging",
                )
                .order_by(ImportRow.id.desc())
            )
            if row is not None:
                return row.id, row.lines_done
            now = utcnow()
            row = ImportRow(
                bank_id=bank.id,
                source_name=source_name,
                content_sha256=content_sha256,
                list_format=list_format,
                status="staging",
                lines_done=0,
                entries_staged=0,
                entries_added=0,
                started_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            return row.id, 0

    def stage_chunk(
        self, import_id: int, rows: Sequence[tuple[int, HashRecord]], lines_done: int
    ) -> None:
        """Stage parsed records and move the checkpoint, in one transaction."""
        with self.store.session() as session:
            if rows:
                session.execute(
                    insert(StagedEntryRow),
                    [
                        {
                            "import_id": import_id,
                            "line_number": number,
                            "signal_type": r.signal_type,
                            "value": r.value,
                            "source": r.source,
                            "external_id": r.external_id,
                            "labels": list(r.labels),
                        }
                        for number, r in rows
                    ],
                )
            session.execute(
                update(ImportRow)
                .where(ImportRow.id == import_id)
                .values(
                    lines_done=lines_done,
                    entries_staged=ImportRow.entries_staged + len(rows),
                    updated_at=utcnow(),
                )
            )

    def fail_import(self, import_id: int, error: str) -> None:
        """Mark an import failed and drop what it staged."""
        with self.store.session() as session:
            session.execute(delete(StagedEntryRow).where(StagedEntryRow.import_id == import_id))
            session.execute(
                update(ImportRow)
                .where(ImportRow.id == import_id)
                .values(status="failed", error=error[:4000], updated_at=utcnow())
            )

    def publish_import(self, import_id: int) -> tuple[int, int]:
        """Move staged entries into the bank in one transaction.

        Returns ``(entries_added, staged_total)``. Values already in the bank
        and repeats inside the list are skipped (first occurrence wins).
        """
        now = utcnow()
        with self.store.session() as session:
            imp = session.get(ImportRow, import_id)
            if imp is None or imp.status != "staging":
                raise ConflictError(f"import {import_id} is not in progress")
            bank = session.get(BankRow, imp.bank_id)
            assert bank is not None
            s = aliased(StagedEntryRow)
            s2 = aliased(StagedEntryRow)
            first = (
                select(func.min(s2.id))
                .where(
                    s2.import_id == import_id,
                    s2.signal_type == s.signal_type,
                    s2.value == s.value,
                )
                .scalar_subquery()
            )
            present = exists().where(
                BankEntryRow.bank_id == bank.id,
                BankEntryRow.signal_type == s.signal_type,
                BankEntryRow.value == s.value,
            )
            source = select(
                literal(bank.id, BigInteger),
                s.signal_type,
                s.value,
                s.source,
                s.external_id,
                s.labels,
                literal(import_id, BigInteger),
            ).where(s.import_id == import_id, s.id == first, ~present)
            # Entry ids follow the order of the list (exports round-trip).
            source = source.order_by(s.id)
            session.execute(
                insert(BankEntryRow).from_select(
                    [
                        "bank_id",
                        "signal_type",
                        "value",
                        "source",
                        "external_id",
                        "labels",
                        "import_id",
                    ],
                    source,
                )
            )
            # added_at is set in a second statement: a bind parameter of a
            # timezone-aware type inside INSERT ... SELECT is not portable.
            session.execute(
                update(BankEntryRow).where(BankEntryRow.import_id == import_id).values(added_at=now)
            )
            added_rows = session.execute(
                select(BankEntryRow.id, BankEntryRow.signal_type, BankEntryRow.value).where(
                    BankEntryRow.import_id == import_id
                )
            ).all()
            if added_rows:
                session.execute(
                    insert(EntryChangeRow),
                    [
                        {
                            "entry_id": r[0],
                            "bank_id": bank.id,
                            "op": "add",
                            "signal_type": r[1],
                            "value": r[2],
                            "changed_at": now,
                        }
                        for r in added_rows
                    ],
                )
                bank.version += 1
                bank.updated_at = now
            staged = imp.entries_staged
            session.execute(delete(StagedEntryRow).where(StagedEntryRow.import_id == import_id))
            imp.status = "done"
            imp.entries_added = len(added_rows)
            imp.updated_at = now
            return len(added_rows), int(staged)

    def import_status(self, import_id: int) -> dict[str, Any]:
        """The import row as a dict (for status displays and tests)."""
        with self.store.session() as session:
            imp = session.get(ImportRow, import_id)
            if imp is None:
                raise NotFoundError(f"no import with id {import_id}")
            return {
                "id": imp.id,
                "status": imp.status,
                "lines_done": imp.lines_done,
                "entries_staged": imp.entries_staged,
                "entries_added": imp.entries_added,
                "error": imp.error,
            }
