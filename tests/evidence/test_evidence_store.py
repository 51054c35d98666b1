"""Encrypted evidence: round trip, integrity errors, atomic preservation, holds, purge, rotation."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from evidence_support import KEY_A, KEY_B, Clock, png
from safestream.errors import ConflictError, InputError, NotFoundError
from safestream.evidence.crypto import KeyRing
from safestream.evidence.errors import EvidenceIntegrityError, EvidenceKeyError
from safestream.evidence.store import MAGIC, EvidenceStore
from safestream.store.audit import AuditRepository
from safestream.store.db import Store


def _preserve(ev: EvidenceStore, data: bytes | None = None, **kw: Any) -> str:
    args: dict[str, Any] = {
        "actor": "key:1",
        "basis": "report",
        "legal_basis": "18 U.S.C. 2258A report",
        "media_type": "image/png",
        "account_id": "acct-1",
        "metadata": {"upload_ip": "192.0.2.7", "source_port": 50123},
    }
    args.update(kw)
    return ev.preserve(data if data is not None else png(1), **args).id


def test_round_trip_and_hash(evidence: EvidenceStore) -> None:
    data = png(1)
    eid = _preserve(evidence, data)
    record = evidence.record(eid)
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.key_id == "k1"
    stored = (evidence.directory / record.path).read_bytes()
    assert data not in stored and stored.startswith(MAGIC)
    obj = evidence.get(eid, actor="key:2", reason="confirm match")
    assert obj.content == data
    assert obj.metadata == {"upload_ip": "192.0.2.7", "source_port": 50123}
    actions = [e.action for e in AuditRepository(evidence.store).list_events()]
    assert actions == ["evidence.preserve", "evidence.view"]
    assert AuditRepository(evidence.store).verify().ok


def test_tampered_ciphertext_is_an_integrity_error(evidence: EvidenceStore) -> None:
    eid = _preserve(evidence)
    path = evidence.directory / evidence.record(eid).path
    raw = bytearray(path.read_bytes())
    raw[len(MAGIC) + 20] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(EvidenceIntegrityError, match="authentication failed"):
        evidence.get(eid, actor="k", reason="look at it")


def test_truncated_and_missing_files(evidence: EvidenceStore) -> None:
    eid = _preserve(evidence)
    path = evidence.directory / evidence.record(eid).path
    path.write_bytes(MAGIC + b"short")
    with pytest.raises(EvidenceIntegrityError, match="truncated"):
        evidence.verify(eid)
    path.unlink()
    with pytest.raises(EvidenceIntegrityError, match="missing"):
        evidence.verify(eid)


def test_swapped_files_fail_authentication(evidence: EvidenceStore) -> None:
    a, b = _preserve(evidence, png(1)), _preserve(evidence, png(2))
    pa = evidence.directory / evidence.record(a).path
    pb = evidence.directory / evidence.record(b).path
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)
    pb.write_bytes(da)
    with pytest.raises(EvidenceIntegrityError):
        evidence.verify(a)


def test_wrong_key_is_an_integrity_error(
    store: Store, evidence: EvidenceStore, clock: Clock
) -> None:
    eid = _preserve(evidence)
    wrong = EvidenceStore(
        store, evidence.directory, KeyRing.parse(f"k1:{KEY_B}", source="t"), clock=clock
    )
    with pytest.raises(EvidenceIntegrityError, match="key 'k1'"):
        wrong.verify(eid)
    missing = EvidenceStore(
        store, evidence.directory, KeyRing.parse(f"k9:{KEY_B}", source="t"), clock=clock
    )
    with pytest.raises(EvidenceKeyError, match="'k1' is not configured"):
        missing.verify(eid)


def test_edited_hash_in_row_is_detected(store: Store, evidence: EvidenceStore) -> None:
    from sqlalchemy import update

    from safestream.store.models import EvidenceRow

    eid = _preserve(evidence)
    with store.session() as s:
        s.execute(update(EvidenceRow).where(EvidenceRow.id == eid).values(sha256="0" * 64))
    with pytest.raises(EvidenceIntegrityError, match="SHA-256"):
        evidence.verify(eid)


class _Crash(Exception):
    pass


@pytest.mark.parametrize("step", ["_before_rename", "_before_commit"])
def test_failure_during_preserve_leaves_nothing(
    evidence: EvidenceStore, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    def boom(_conn: Any) -> None:
        raise _Crash(step)

    monkeypatch.setattr(evidence, step, boom)
    with pytest.raises(_Crash):
        _preserve(evidence)
    assert evidence.list_objects() == []
    assert list(evidence.directory.iterdir()) == []
    assert AuditRepository(evidence.store).list_events() == []


def test_crash_after_rename_leaves_only_an_orphan_that_is_swept(
    evidence: EvidenceStore, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    """A killed process runs no clean-up: simulate it by skipping our unlink."""
    real_unlink = Path.unlink

    def no_cleanup(self: Path, missing_ok: bool = False) -> None:
        if self.parent == evidence.directory:
            return
        real_unlink(self, missing_ok=missing_ok)

    def boom(_conn: Any) -> None:
        raise _Crash("killed")

    monkeypatch.setattr(Path, "unlink", no_cleanup)
    monkeypatch.setattr(evidence, "_before_commit", boom)
    with pytest.raises(_Crash):
        _preserve(evidence)
    monkeypatch.undo()
    assert evidence.list_objects() == []  # no row: the object does not exist
    leftovers = list(evidence.directory.iterdir())
    assert len(leftovers) == 1
    assert evidence.sweep_orphans(min_age_s=3600) == 0  # too young: might be in flight
    os.utime(leftovers[0], (0, 0))
    assert evidence.sweep_orphans(min_age_s=3600) == 1
    assert list(evidence.directory.iterdir()) == []


def test_preserve_bad_input(evidence: EvidenceStore) -> None:
    with pytest.raises(InputError, match="empty"):
        _preserve(evidence, b"")
    with pytest.raises(InputError, match="legal basis"):
        _preserve(evidence, legal_basis=" ")
    with pytest.raises(InputError, match="basis must be"):
        _preserve(evidence, basis="whim")
    with pytest.raises(NotFoundError):
        evidence.get("nope", actor="k", reason="look")
    eid = _preserve(evidence)
    with pytest.raises(InputError, match="reason"):
        evidence.get(eid, actor="k", reason="")


def test_report_hold_lasts_a_year_then_purge(evidence: EvidenceStore, clock: Clock) -> None:
    eid = _preserve(evidence)
    (hold,) = evidence.holds(eid)
    assert hold.expires_at - hold.created_at == timedelta(days=365)
    clock.advance(timedelta(days=364))
    assert evidence.purge_expired() == []
    clock.advance(timedelta(days=2))
    assert evidence.purge_expired() == [eid]
    record = evidence.record(eid)
    assert record.status == "purged" and record.purged_at == clock.now
    assert not (evidence.directory / record.path).exists()
    with pytest.raises(NotFoundError, match="purged"):
        evidence.get(eid, actor="k", reason="look")
    purges = AuditRepository(evidence.store).list_events(action="evidence.purge")
    assert [e.object_id for e in purges] == [eid]
    assert AuditRepository(evidence.store).verify().ok


def test_preservation_hold_renewal_and_blocking(evidence: EvidenceStore, clock: Clock) -> None:
    eid = _preserve(evidence, basis="preservation_request", legal_basis="2703(f) letter 17")
    (hold,) = evidence.holds(eid)
    assert hold.expires_at - hold.created_at == timedelta(days=90)
    clock.advance(timedelta(days=80))
    renewed = evidence.renew_hold(hold.id, actor="k", reason="second 2703(f) letter")
    assert renewed.expires_at == hold.expires_at + timedelta(days=90)
    assert renewed.renewals == 1
    clock.advance(timedelta(days=95))
    assert evidence.purge_expired() == []  # still held
    # A second, report-based hold keeps it even after the first expires.
    evidence.add_hold(eid, actor="k", basis="report", legal_basis="CyberTipline report 9")
    clock.advance(timedelta(days=30))
    assert evidence.purge_expired() == []
    with pytest.raises(ConflictError, match="renewable"):
        evidence.renew_hold(evidence.holds(eid)[1].id, actor="k", reason="x")


def test_released_holds_allow_purge(evidence: EvidenceStore, clock: Clock) -> None:
    eid = _preserve(evidence)
    (hold,) = evidence.holds(eid)
    evidence.release_hold(hold.id, actor="k", reason="case closed by court order 5")
    with pytest.raises(ConflictError):
        evidence.release_hold(hold.id, actor="k", reason="again")
    assert evidence.purge_expired() == [eid]
    with pytest.raises(ConflictError, match="purged"):
        evidence.add_hold(eid, actor="k", basis="report", legal_basis="late")


def test_key_rotation_reencrypts(store: Store, evidence: EvidenceStore, clock: Clock) -> None:
    ids = [_preserve(evidence, png(i)) for i in range(3)]
    old_paths = {evidence.record(i).path for i in ids}
    rotated = EvidenceStore(
        store,
        evidence.directory,
        KeyRing.parse(f"k2:{KEY_B}\nk1:{KEY_A}", source="t"),
        clock=clock,
    )
    assert rotated.rotate(actor="admin") == 3
    assert rotated.rotate(actor="admin") == 0
    for i, eid in enumerate(ids):
        assert rotated.record(eid).key_id == "k2"
        assert rotated.get(eid, actor="k", reason="after rotation").content == png(i)
    assert not any((evidence.directory / p).exists() for p in old_paths)
    only_new = EvidenceStore(
        store, evidence.directory, KeyRing.parse(f"k2:{KEY_B}", source="t"), clock=clock
    )
    only_new.verify(ids[0])
    assert len(AuditRepository(store).list_events(action="evidence.rekey")) == 3


def test_key_ring_config_errors() -> None:
    from safestream.errors import ConfigError

    with pytest.raises(ConfigError, match="no evidence key"):
        KeyRing.from_env({})
    with pytest.raises(ConfigError, match="32"):
        KeyRing.parse("a:AAAA", source="t")
    with pytest.raises(ConfigError, match="base64"):
        KeyRing.parse("a:!!!", source="t")
    ring = KeyRing.from_env({"SAFESTREAM_EVIDENCE_KEYS": f"new:{KEY_B},old:{KEY_A}"})
    assert ring.active_id == "new" and set(ring.keys) == {"new", "old"}


def test_key_file(tmp_path: Path) -> None:
    f = tmp_path / "keys"
    f.write_text(f"# evidence keys\nk1:{KEY_A}\n")
    assert KeyRing.from_env({"SAFESTREAM_EVIDENCE_KEY_FILE": str(f)}).active_id == "k1"
