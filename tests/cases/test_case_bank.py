"""A confirmation adds the case's file hashes to an internal bank (audited)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cases_support import T0, hashes, record_check
from safestream.cases.model import CaseConfig
from safestream.cases.service import CaseService
from safestream.errors import InputError, NotFoundError
from safestream.store.audit import AuditRepository
from safestream.store.banks import BankRepository
from safestream.store.db import Store


def in_review(store: Store) -> tuple[CaseService, int]:
    record_check(store, seed=1, at=T0)
    record_check(store, seed=1, at=T0 + timedelta(minutes=1))  # same file twice
    record_check(store, seed=2, at=T0 + timedelta(minutes=2))
    svc = CaseService(store, CaseConfig(), clock=lambda: T0 + timedelta(minutes=5))
    svc.sync()
    (case,) = svc.repo.list()
    svc.decide(case.id, "in_review", reason_code="assigned", actor="r")
    return svc, case.id


def test_confirmation_adds_exact_and_pdq_hashes(store: Store) -> None:
    banks = BankRepository(store)
    banks.create_bank("confirmed-internal")
    svc, case_id = in_review(store)
    case = svc.decide(
        case_id,
        "confirmed",
        reason_code="known_material_confirmed",
        actor="reviewer-1",
        add_to_bank="confirmed-internal",
    )
    assert case.status == "confirmed"
    entries = list(banks.iter_entries("confirmed-internal"))
    got = {(e.signal_type, e.value) for e in entries}
    want = {(t, hashes(s)[t]) for s in (1, 2) for t in ("sha256", "md5", "pdq")}
    assert got == want  # deduplicated: two files, three hashes each
    assert {e.source for e in entries} == {f"case:{case_id}"}
    (event,) = AuditRepository(store).list_events(action="case.confirmed")
    assert event.detail["add_to_bank"] == "confirmed-internal"
    assert event.detail["bank_entries"] == 6
    assert event.actor == "reviewer-1"


@pytest.mark.parametrize(
    ("status", "reason", "bank", "allow", "error", "match"),
    [
        ("dismissed", "false_positive", "known", None, InputError, "confirmation only"),
        ("confirmed", "known_material_confirmed", "benign", None, InputError, "allow-list bank"),
        ("confirmed", "known_material_confirmed", "nope", None, NotFoundError, "nope"),
        ("confirmed", "known_material_confirmed", "known", "benign", InputError, "dismissal only"),
    ],
)
def test_bad_bank_requests_change_nothing(
    store: Store,
    status: str,
    reason: str,
    bank: str,
    allow: str | None,
    error: type[Exception],
    match: str,
) -> None:
    banks = BankRepository(store)
    banks.create_bank("known")
    banks.create_bank("benign", is_allow_list=True)
    svc, case_id = in_review(store)
    with pytest.raises(error, match=match):
        svc.decide(
            case_id,
            status,
            reason_code=reason,
            actor="r",
            add_to_bank=bank,
            allow_list_bank=allow,
        )
    assert svc.get(case_id).status == "in_review"
    assert list(banks.iter_entries("known")) == [] and list(banks.iter_entries("benign")) == []
    assert AuditRepository(store).list_events(action=f"case.{status}") == []
