"""The case workflow over the store: ingest detections, list by priority, decide."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from safestream.banks.formats import HashRecord
from safestream.cases.model import Case, CaseConfig, CaseStatus, priority
from safestream.errors import InputError
from safestream.store.banks import BankRepository
from safestream.store.cases import CaseRepository, RankInputs
from safestream.store.db import Store
from safestream.store.models import utcnow


class CaseService:
    """Cases for reviewers: grouped detections, priority order, audited decisions."""

    def __init__(
        self,
        store: Store,
        config: CaseConfig | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.config = config or CaseConfig()
        self.repo = CaseRepository(store)
        self.banks = BankRepository(store)
        self.clock = clock

    def sync(self, *, limit: int = 1000) -> int:
        """Group check records not yet seen into cases; return detections added."""
        total = 0
        while True:
            added, read = self.repo.ingest(self.config, limit=limit)
            total += added
            if read < limit:
                return total

    def list(self, *, status: str | None = None, limit: int = 100) -> list[Case]:
        """Cases, most urgent first (priority at now, then newest id).

        Every case of ``status`` is ranked, however old (an old live case comes
        before a recent known-material one); memory holds ``limit`` cases.
        """
        if status is not None and status not in {s.value for s in CaseStatus}:
            self._bad_status(status)
        if limit < 1:
            raise InputError(f"limit must be at least 1, got {limit}")
        now = self.clock()

        def score(c: RankInputs) -> int:
            return priority(
                kinds=set(c.kinds),
                distinct_files=c.distinct_files,
                last_seen_at=c.last_seen_at,
                now=now,
                prior_reports=c.prior_reports,
                config=self.config,
            ).score

        cases = self.repo.ranked(score, status=status, limit=limit)
        # The same order from the loaded cases (a detection added meanwhile may move one).
        cases.sort(key=lambda c: (-c.priority(now, self.config).score, -c.id))
        return cases

    @staticmethod
    def _bad_status(status: str) -> None:
        names = ", ".join(s.value for s in CaseStatus)
        raise InputError(f"unknown case status {status!r}; statuses: {names}")

    def get(self, case_id: int) -> Case:
        """One case."""
        return self.repo.get(case_id)

    def to_dict(self, case: Case, *, events: bool = True) -> dict[str, Any]:
        """A case as JSON with its priority now."""
        return case.to_dict(self.clock(), self.config, events=events)

    def decide(
        self,
        case_id: int,
        status: str,
        *,
        reason_code: str,
        actor: str,
        note: str = "",
        allow_list_bank: str | None = None,
        add_to_bank: str | None = None,
    ) -> Case:
        """Record a reviewer's decision (audited); it may add the files to a bank.

        ``allow_list_bank`` (a dismissal only) names an allow-list bank: the
        case's file hashes (SHA-256, and PDQ where there is one) are added to
        it, so the same benign content is not flagged again. ``add_to_bank``
        (a confirmation only) names an internal bank that is not an allow-list:
        the case's SHA-256, MD5 and PDQ hashes are added, so the same material
        matches from now on. The bank and the number of entries are audited
        with the decision.
        """
        bank_name: str | None = None
        if allow_list_bank is not None:
            if status != CaseStatus.DISMISSED.value:
                raise InputError("allow_list_bank goes with a dismissal only")
            if not self.banks.get_bank(allow_list_bank).is_allow_list:
                raise InputError(f"bank {allow_list_bank!r} is not an allow-list bank")
            bank_name = allow_list_bank
        if add_to_bank is not None:
            if status != CaseStatus.CONFIRMED.value:
                raise InputError("add_to_bank goes with a confirmation only")
            if allow_list_bank is not None:
                raise InputError("give add_to_bank or allow_list_bank, not both")
            if self.banks.get_bank(add_to_bank).is_allow_list:
                raise InputError(
                    f"bank {add_to_bank!r} is an allow-list bank: confirmed material goes to a "
                    "bank of known material"
                )
            bank_name = add_to_bank
        records: list[HashRecord] = []
        detail: dict[str, Any] = {}
        if allow_list_bank:
            records = _hash_records(self.repo.get(case_id), ("sha256", "pdq"), "dismissed")
            detail = {"allow_list_bank": allow_list_bank, "allow_list_entries": len(records)}
        if add_to_bank:
            records = _hash_records(self.repo.get(case_id), ("sha256", "md5", "pdq"), "confirmed")
            detail = {"add_to_bank": add_to_bank, "bank_entries": len(records)}
        case = self.repo.transition(
            case_id, status, reason_code=reason_code, note=note, actor=actor, detail=detail
        )
        if bank_name:
            self.banks.add_entries(bank_name, records)
        return case


def _hash_records(case: Case, signal_types: tuple[str, ...], label: str) -> list[HashRecord]:
    """Bank records for a case's files: each present hash of ``signal_types``."""
    out: list[HashRecord] = []
    for events in case.files().values():
        hashes = events[0].record.get("hashes", {})
        for signal_type in signal_types:
            value = hashes.get(signal_type)
            if value:
                out.append(
                    HashRecord(
                        signal_type=signal_type,
                        value=str(value),
                        source=f"case:{case.id}",
                        labels=(label,),
                    )
                )
    return out


__all__ = ["CaseService"]
