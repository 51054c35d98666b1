"""The audit chain: appends stay a chain under concurrency; tampering is found and named."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, update

from safestream.evidence.audit import GENESIS, recompute
from safestream.store.audit import AuditRepository
from safestream.store.db import Store
from safestream.store.models import AuditEventRow, AuditHeadRow

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _fill(store: Store, n: int = 6) -> AuditRepository:
    audit = AuditRepository(store)
    for i in range(n):
        audit.append(
            actor=f"key:{i % 2}",
            action="evidence.view",
            object_type="evidence",
            object_id=f"obj-{i}",
            reason=f"review {i}",
            detail={"n": i},
            now=T0 + timedelta(seconds=i),
        )
    return audit


def test_chain_links_and_verifies(store: Store) -> None:
    audit = _fill(store)
    events = audit.list_events()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert all(recompute(e) == e.hash for e in events)
    result = audit.verify()
    assert result.ok and result.events_checked == 6


def test_empty_chain_verifies(store: Store) -> None:
    assert AuditRepository(store).verify().ok


def test_edited_event_is_named(store: Store) -> None:
    audit = _fill(store)
    with store.session() as s:
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == 3).values(reason="nothing"))
    result = audit.verify()
    assert not result.ok
    assert (result.first_bad_seq, result.problem) == (3, "edited")
    assert "event 3" in result.message


def test_edited_time_is_found(store: Store) -> None:
    audit = _fill(store)
    with store.session() as s:
        s.execute(
            update(AuditEventRow)
            .where(AuditEventRow.seq == 2)
            .values(occurred_at=T0 + timedelta(days=1))
        )
    assert (audit.verify().first_bad_seq, audit.verify().problem) == (2, "edited")


def test_deleted_event_is_named(store: Store) -> None:
    audit = _fill(store)
    with store.session() as s:
        s.execute(delete(AuditEventRow).where(AuditEventRow.seq == 4))
    result = audit.verify()
    assert (result.first_bad_seq, result.problem) == (4, "deleted")


def test_deleted_tail_is_found(store: Store) -> None:
    audit = _fill(store)
    with store.session() as s:
        s.execute(delete(AuditEventRow).where(AuditEventRow.seq >= 5))
    result = audit.verify()
    assert (result.first_bad_seq, result.problem) == (5, "deleted")


def test_deleted_tail_with_head_rewound_is_found(store: Store) -> None:
    """Rewinding the head too still breaks: the deleted events' successors are gone, but
    an attacker who deletes the tail and rewinds the head must know the old hash; we
    check that at least the head mismatch is detected when only the seq is rewound."""
    audit = _fill(store)
    with store.session() as s:
        s.execute(delete(AuditEventRow).where(AuditEventRow.seq == 6))
        s.execute(update(AuditHeadRow).values(last_seq=5))
    result = audit.verify()
    assert not result.ok and result.problem == "deleted"


def test_reordered_events_are_named(store: Store) -> None:
    audit = _fill(store)
    # Swap the positions of events 3 and 4 (their contents stay intact).
    with store.session() as s:
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == 3).values(seq=-3))
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == 4).values(seq=3))
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == -3).values(seq=4))
    result = audit.verify()
    assert (result.first_bad_seq, result.problem) == (3, "reordered")


def test_rehashed_edit_is_still_found(store: Store) -> None:
    """An attacker who edits an event and fixes its own hash breaks the next link."""
    audit = _fill(store)
    events = {e.seq: e for e in audit.list_events()}
    edited = events[2]
    from dataclasses import replace

    forged = replace(edited, reason="forged")
    with store.session() as s:
        s.execute(
            update(AuditEventRow)
            .where(AuditEventRow.seq == 2)
            .values(reason="forged", hash=recompute(forged))
        )
    result = audit.verify()
    assert not result.ok and result.first_bad_seq == 3


def test_concurrent_appends_stay_one_chain(store: Store) -> None:
    audit = AuditRepository(store)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                audit.append(
                    actor=f"thread-{n}", action="login", object_type="key", object_id=str(i)
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = audit.verify()
    assert result.ok and result.events_checked == 40


def test_bad_event_refused(store: Store) -> None:
    from safestream.errors import InputError

    with pytest.raises(InputError):
        AuditRepository(store).append(actor="", action="x", object_type="o", object_id="1")
