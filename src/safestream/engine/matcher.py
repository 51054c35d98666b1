"""In-memory indexes over every bank entry, kept in step with the store.

One :class:`PDQIndex` holds the PDQ entries of all banks and one
:class:`ExactIndex` per cryptographic signal type holds the rest; ids are
bank-entry ids. Bank settings (enabled, threshold, allow-list) are applied at
match time, so changing them needs no index work. The matcher follows the
store's append-only change log, so entries added or removed by any process
become matchable (or stop matching) at the next :meth:`Matcher.refresh`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from safestream.banks.model import Bank, EntryChange
from safestream.index.exact import ExactIndex
from safestream.index.pdq_index import PDQIndex
from safestream.store.banks import BankRepository

log = logging.getLogger(__name__)

_BATCH = 50_000
SNAPSHOT_FORMAT = 1
#: Save a snapshot when building replayed more changes than this.
SNAPSHOT_AFTER_CHANGES = 10_000
#: SQLite: how long a skipped change-log number is looked for before it is taken as
#: rolled back (seconds).
GAP_TTL_S = 120.0
#: PostgreSQL: how old a gap must be before its transaction-id bound is taken, the
#: margin for a transaction between taking a number and getting its own id (seconds).
GAP_MIN_AGE_S = 5.0
#: At most this many skipped numbers are tracked per jump in the log.
MAX_GAPS = 10_000


@dataclass(frozen=True)
class Hit:
    """A raw index hit before bank settings are applied."""

    entry_id: int
    signal_type: str
    distance_bits: int
    query_index: int


@dataclass(frozen=True)
class _Gap:
    """A skipped change-log number: when it was noticed, and its bound on PostgreSQL."""

    noticed_at: float  # Matcher.clock seconds
    #: A transaction id above that of any transaction that could hold the number.
    xid_bound: int | None = None


def _gap_settled(gap: _Gap, now: float, xmin: int | None) -> bool:
    """Whether a gap still missing after the lookup can be dropped (``xmin``: None on SQLite)."""
    age_s = now - gap.noticed_at
    if xmin is None:
        return age_s > GAP_TTL_S
    return gap.xid_bound is not None and xmin >= gap.xid_bound and age_s >= GAP_MIN_AGE_S


class Matcher:
    """Indexes of all bank entries plus the bank settings snapshot."""

    def __init__(self, repo: BankRepository) -> None:
        self.repo = repo
        self.pdq = PDQIndex()
        self.exact: dict[str, ExactIndex] = defaultdict(ExactIndex)
        self.banks: dict[int, Bank] = {}
        self.last_seq = 0
        #: Seconds for the age of gaps (monotonic; replaceable in tests).
        self.clock: Callable[[], float] = time.monotonic
        #: Skipped sequence numbers, looked up again at each refresh.
        self._gaps: dict[int, _Gap] = {}
        self._lock = threading.Lock()

    @classmethod
    def build(cls, repo: BankRepository, snapshot_dir: Path | None = None) -> Matcher:
        """Indexes of every entry: from a snapshot plus the change log, else from the store.

        With ``snapshot_dir``, a valid snapshot of the same database is loaded
        and only the changes made since are replayed; a missing, foreign or
        corrupt snapshot falls back to a full load. A snapshot is (re)written
        when that saved replaying more than ``SNAPSHOT_AFTER_CHANGES`` changes.
        """
        if snapshot_dir is not None:
            matcher = cls._from_snapshot(repo, snapshot_dir)
            if matcher is None:
                matcher = cls._from_store(repo)
                replayed = sum(len(i) for i in matcher.exact.values()) + len(matcher.pdq)
            else:
                replayed = matcher.refresh()
            if replayed > SNAPSHOT_AFTER_CHANGES:
                matcher.save_snapshot(snapshot_dir)
            return matcher
        return cls._from_store(repo)

    @classmethod
    def _from_snapshot(cls, repo: BankRepository, directory: Path) -> Matcher | None:
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("format") != SNAPSHOT_FORMAT:
                raise ValueError(f"snapshot format {manifest.get('format')!r}")
            if manifest.get("instance_id") != repo.store.instance_id():
                raise ValueError("snapshot belongs to another database")
            last_seq = int(manifest["last_seq"])
            if last_seq > repo.max_change_seq():
                raise ValueError("snapshot is newer than the database")
            matcher = cls(repo)
            matcher.pdq = PDQIndex.load(directory / "pdq")
            for signal_type in manifest["exact_types"]:
                matcher.exact[signal_type] = ExactIndex.load(directory / f"exact-{signal_type}")
            matcher.last_seq = last_seq
            return matcher
        except Exception as exc:  # any damage: rebuild from the database, never fail
            log.warning("ignoring index snapshot in %s: %s", directory, exc)
            return None

    def save_snapshot(self, directory: Path) -> None:
        """Write the indexes and the change-log position to ``directory`` (atomically)."""
        with self._lock:
            tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.pdq.save(tmp / "pdq")
            for signal_type, index in self.exact.items():
                index.save(tmp / f"exact-{signal_type}")
            manifest = {
                "format": SNAPSHOT_FORMAT,
                "instance_id": self.repo.store.instance_id(),
                "last_seq": self.last_seq,
                "exact_types": sorted(self.exact),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest))
            old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
            if directory.exists():
                directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def _from_store(cls, repo: BankRepository) -> Matcher:
        matcher = cls(repo)
        # Read the log position first: changes committed while we stream the
        # entries are then replayed by refresh(), and replays are idempotent.
        matcher.last_seq = repo.max_change_seq()
        matcher._note_recent_gaps()
        ids: list[int] = []
        hashes: list[bytes] = []
        exact: dict[str, tuple[list[int], list[str]]] = defaultdict(lambda: ([], []))
        for entry_id, _bank_id, signal_type, value in repo.iter_all_entries():
            if signal_type == "pdq":
                ids.append(entry_id)
                hashes.append(bytes.fromhex(value))
                if len(ids) >= _BATCH:
                    matcher._add_pdq(ids, hashes)
                    ids, hashes = [], []
            else:
                exact[signal_type][0].append(entry_id)
                exact[signal_type][1].append(value)
        matcher._add_pdq(ids, hashes)
        for signal_type, (eids, values) in exact.items():
            matcher.exact[signal_type].add(eids, values)
        matcher.refresh()
        return matcher

    def _add_pdq(self, ids: list[int], hashes: list[bytes]) -> None:
        if ids:
            arr = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(ids), 32)
            self.pdq.add(np.asarray(ids, dtype=np.int64), arr)

    def _note_recent_gaps(self) -> None:
        """Gaps just below the starting position may be transactions still in flight."""
        recent = self.repo.change_seqs_between(max(0, self.last_seq - MAX_GAPS), self.last_seq)
        present = set(recent)
        noticed = _Gap(self.clock())
        for seq in range(max(1, self.last_seq - MAX_GAPS + 1), self.last_seq + 1):
            if seq not in present and recent and seq > recent[0]:
                self._gaps.setdefault(seq, noticed)

    def _apply(self, change: EntryChange) -> None:
        if change.signal_type == "pdq":
            if change.op == "add":
                self._add_pdq([change.entry_id], [bytes.fromhex(change.value)])
            else:
                self.pdq.remove([change.entry_id])
        else:
            index = self.exact[change.signal_type]
            if change.op == "add":
                index.add([change.entry_id], [change.value])
            else:
                index.remove([change.entry_id])

    def _note_gaps(self, seqs: list[int]) -> None:
        """Remember sequence numbers skipped over: they may still commit."""
        noticed = _Gap(self.clock())  # after the read: no earlier than the numbers were taken
        expected = self.last_seq + 1
        for seq in seqs:
            if seq > expected:
                for missing in range(max(expected, seq - MAX_GAPS), seq):
                    self._gaps.setdefault(missing, noticed)
            expected = max(expected, seq + 1)

    def _bound_gaps(self) -> None:
        """Give the gaps at least ``GAP_MIN_AGE_S`` old a transaction-id bound (PostgreSQL)."""
        if self.repo.store.dialect != "postgresql":
            return
        now = self.clock()
        due = [
            q
            for q, g in self._gaps.items()
            if g.xid_bound is None and now - g.noticed_at >= GAP_MIN_AGE_S
        ]
        if due:
            bound = self.repo.fresh_xid()
            for q in due:
                self._gaps[q] = _Gap(self._gaps[q].noticed_at, bound)

    def pending_gaps(self) -> list[int]:
        """Sequence numbers skipped over and still looked for (ascending)."""
        with self._lock:
            return sorted(self._gaps)

    def refresh(self) -> int:
        """Apply store changes since the last refresh; return how many were applied.

        On PostgreSQL a change can commit after one with a higher sequence
        number (sequences are taken at insert, not at commit), so numbers
        skipped over are kept as *gaps* and looked up again on later refreshes
        until they appear. Applying a late change is safe: an entry's removal
        cannot commit before its addition. A gap that never fills (a
        rolled-back insert leaves one for ever) is dropped:

        - on PostgreSQL, as soon as no transaction that could hold its number
          is left, however long one runs. At the first refresh at which the
          gap is at least ``GAP_MIN_AGE_S`` old, a fresh transaction id X is
          taken (:meth:`BankRepository.fresh_xid`). Transaction ids are handed
          out in increasing order, and the holder of the number had its own by
          then: it gets one at the latest when it writes the row that takes the
          number (the age is the margin for that), so its id is below X. The
          gap is dropped at a later refresh when the snapshot's xmin -- the
          oldest transaction still running, read *before* the gaps are looked
          up -- is at least X: every transaction below X has ended, and the
          lookup after saw what they committed.
        - on SQLite, which serialises writers (gaps come only from deleted
          rows), ``GAP_TTL_S`` after it was noticed.
        """
        with self._lock:
            applied = 0
            if self._gaps:
                # xmin BEFORE the lookup (READ COMMITTED: each statement sees what
                # committed before it), so a holder of a missing number still runs
                # here or is seen by the lookup. In the other order, one that
                # commits between the two would be missed by the lookup and no
                # longer hold xmin back: a lost change.
                snapshot = self.repo.snapshot_xids()
                xmin = snapshot[0] if snapshot is not None else None
                late = self.repo.changes_with_seqs(sorted(self._gaps))
                for change in late:
                    self._apply(change)
                    self._gaps.pop(change.seq, None)
                    applied += 1
                now = self.clock()
                self._gaps = {q: g for q, g in self._gaps.items() if not _gap_settled(g, now, xmin)}
            while True:
                changes = self.repo.changes_since(self.last_seq)
                if not changes:
                    break
                self._note_gaps([c.seq for c in changes])
                for change in changes:
                    self._apply(change)
                    self.last_seq = change.seq
                    applied += 1
            self._bound_gaps()
            self.banks = {b.id: b for b in self.repo.list_banks(with_counts=False)}
            return applied

    def max_pdq_threshold(self) -> int:
        """Largest PDQ threshold of any enabled bank (31 when there is none)."""
        limits = [b.pdq_threshold for b in self.banks.values() if b.enabled]
        return max(limits, default=31)

    def search_pdq(self, hashes: list[str], radius: int | None = None) -> list[Hit]:
        """Index hits for PDQ hex hashes within ``radius`` (default: widest bank threshold)."""
        if not hashes or len(self.pdq) == 0:
            return []
        limit = self.max_pdq_threshold() if radius is None else radius
        queries = np.frombuffer(b"".join(bytes.fromhex(h) for h in hashes), dtype=np.uint8)
        results = self.pdq.search(queries.reshape(len(hashes), 32), radius=limit)
        return [
            Hit(int(entry_id), "pdq", int(distance), qi)
            for qi, row in enumerate(results)
            for entry_id, distance in row
        ]

    def search_exact(self, signal_type: str, value: str) -> list[Hit]:
        """Index hits for one cryptographic hash value."""
        index = self.exact.get(signal_type)
        if index is None:
            return []
        return [Hit(int(entry_id), signal_type, 0, 0) for entry_id in index.search(value)]
