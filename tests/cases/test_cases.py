"""Cases: grouping per account and window, dedup by hash, priority, workflow, audit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cases_support import T0, hashes, record_check
from safestream.cases.model import CaseConfig, CaseStatus, check_transition, priority
from safestream.cases.service import CaseService
from safestream.errors import ConfigError, ConflictError, InputError, NotFoundError
from safestream.store.audit import AuditRepository
from safestream.store.banks import BankRepository
from safestream.store.db import Store


def service(store: Store, **config: float) -> CaseService:
    return CaseService(store, CaseConfig(**config), clock=lambda: T0 + timedelta(minutes=5))


def test_grouping_window_and_dedup(store: Store) -> None:
    record_check(store, seed=1, at=T0)
    record_check(store, seed=1, at=T0 + timedelta(minutes=10))  # same file again
    record_check(store, seed=2, at=T0 + timedelta(minutes=20))
    record_check(store, seed=3, at=T0 + timedelta(hours=5))  # outside a 1 h window
    record_check(store, seed=4, account="acct-2", at=T0)
    record_check(store, seed=5, outcome="no_match", at=T0)  # not a detection
    svc = service(store, window_s=3600)
    assert svc.sync() == 5
    assert svc.sync() == 0  # idempotent: the cursor moved on
    cases = svc.repo.list()
    assert len(cases) == 3
    first = next(c for c in cases if c.account_id == "acct-1" and len(c.events) == 3)
    assert len(first.files()) == 2  # deduplicated by SHA-256
    assert hashes(1)["sha256"] in first.files()
    assert first.first_seen_at == T0
    assert first.last_seen_at == T0 + timedelta(minutes=20)


def test_sync_in_small_batches(store: Store) -> None:
    for i in range(7):
        record_check(store, seed=i, outcome="match" if i % 2 else "no_match")
    svc = service(store)
    assert svc.sync(limit=2) == 3
    assert len(svc.repo.list()) == 1


def test_classifier_and_live_detections_and_priority(store: Store) -> None:
    record_check(store, seed=1, account="known")
    record_check(
        store, seed=2, account="new", outcome="no_match", scores={"nudity": 0.95, "x": None}
    )
    record_check(store, seed=3, account="low", outcome="no_match", scores={"nudity": 0.2})
    record_check(store, seed=4, account="live", surface="live")
    svc = service(store)
    svc.sync()
    ranked = svc.list()
    assert [c.account_id for c in ranked] == ["live", "new", "known"]
    top = svc.to_dict(ranked[0])
    assert any("live" in r for r in top["priority_reasons"])
    assert any("ongoing" in r for r in top["priority_reasons"])
    assert top["kinds"] == ["live"]


def test_priority_is_pure_and_ordered() -> None:
    cfg = CaseConfig()
    common = {"distinct_files": 1, "last_seen_at": T0, "now": T0, "prior_reports": 0}
    live = priority(kinds={"live"}, config=cfg, **common)  # type: ignore[arg-type]
    new = priority(kinds={"new"}, config=cfg, **common)  # type: ignore[arg-type]
    known = priority(kinds={"known"}, config=cfg, **common)  # type: ignore[arg-type]
    assert live.score > new.score > known.score
    old = priority(
        kinds={"known"},
        distinct_files=1,
        last_seen_at=T0,
        now=T0 + timedelta(days=10),
        prior_reports=0,
        config=cfg,
    )
    many = priority(
        kinds={"known"},
        distinct_files=12,
        last_seen_at=T0,
        now=T0,
        prior_reports=2,
        config=cfg,
    )
    assert old.score < known.score < many.score
    assert any("prior report" in r for r in many.reasons)


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        CaseConfig(window_s=-1)
    with pytest.raises(ConfigError):
        CaseConfig(classifier_threshold=0)


@pytest.mark.parametrize(
    ("current", "target", "code", "error"),
    [
        ("new", "confirmed", "known_material_confirmed", ConflictError),
        ("dismissed", "in_review", "assigned", ConflictError),
        ("reported", "in_review", "assigned", ConflictError),
        ("in_review", "reported", "report_submitted", ConflictError),
        ("new", "in_review", "false_positive", InputError),
        ("new", "closed", "assigned", InputError),
    ],
)
def test_invalid_transitions(current: str, target: str, code: str, error: type) -> None:
    with pytest.raises(error):
        check_transition(current, target, code)


def test_decisions_are_audited(store: Store) -> None:
    record_check(store, seed=1)
    svc = service(store)
    svc.sync()
    (case,) = svc.repo.list()
    svc.decide(case.id, "in_review", reason_code="assigned", actor="reviewer:a")
    with pytest.raises(ConflictError):
        svc.decide(case.id, "in_review", reason_code="assigned", actor="reviewer:a")
    done = svc.decide(
        case.id,
        "confirmed",
        reason_code="known_material_confirmed",
        actor="reviewer:a",
        note="matches bank entry",
    )
    assert done.status == CaseStatus.CONFIRMED
    assert done.reviewed_at is not None and done.decided_by == "reviewer:a"
    audit = AuditRepository(store)
    events = [e for e in audit.list_events(object_id=str(case.id)) if e.object_type == "case"]
    assert [e.action for e in events] == ["case.in_review", "case.confirmed"]
    assert events[1].detail["reason_code"] == "known_material_confirmed"
    assert events[1].reason == "matches bank entry"
    assert audit.verify().ok


def test_dismissal_adds_to_allow_list(store: Store) -> None:
    banks = BankRepository(store)
    banks.create_bank("benign", is_allow_list=True)
    banks.create_bank("blocked")
    record_check(store, seed=1)
    record_check(store, seed=2)
    svc = service(store)
    svc.sync()
    (case,) = svc.repo.list()
    svc.decide(case.id, "in_review", reason_code="assigned", actor="r")
    with pytest.raises(InputError, match="not an allow-list"):
        svc.decide(
            case.id, "dismissed", reason_code="false_positive", actor="r", allow_list_bank="blocked"
        )
    with pytest.raises(NotFoundError):
        svc.decide(
            case.id, "dismissed", reason_code="false_positive", actor="r", allow_list_bank="nope"
        )
    svc.decide(
        case.id, "dismissed", reason_code="false_positive", actor="r", allow_list_bank="benign"
    )
    values = {(e.signal_type, e.value) for e in banks.iter_entries("benign")}
    assert ("sha256", hashes(1)["sha256"]) in values
    assert ("pdq", hashes(2)["pdq"]) in values
    (event,) = AuditRepository(store).list_events(action="case.dismissed")
    assert event.detail["allow_list_bank"] == "benign"


def test_closed_case_does_not_take_new_detections(store: Store) -> None:
    record_check(store, seed=1, at=T0)
    svc = service(store)
    svc.sync()
    (case,) = svc.repo.list()
    svc.decide(case.id, "in_review", reason_code="assigned", actor="r")
    svc.decide(case.id, "dismissed", reason_code="benign_content", actor="r")
    record_check(store, seed=2, at=T0 + timedelta(minutes=1))
    svc.sync()
    assert len(svc.repo.list()) == 2


def test_unknown_case_and_status(store: Store) -> None:
    svc = service(store)
    with pytest.raises(NotFoundError):
        svc.get(12345)
    with pytest.raises(NotFoundError):
        svc.decide(12345, "in_review", reason_code="assigned", actor="r")
    with pytest.raises(InputError):
        svc.list(status="closed")


def test_concurrent_syncs_put_each_check_in_one_case(store: Store) -> None:
    import threading

    for i in range(12):
        record_check(store, seed=i, account=f"acct-{i % 3}", at=T0 + timedelta(seconds=i))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            CaseService(store, CaseConfig()).sync(limit=3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    cases = CaseService(store).repo.list()
    assert sorted(c.account_id or "" for c in cases) == ["acct-0", "acct-1", "acct-2"]
    assert sum(len(c.events) for c in cases) == 12
