"""Encrypted evidence: round trip, integrity errors, atomic preservation, holds, purge, rotation.

Every case that touches storage runs on both backends (``any_evidence``): the
filesystem and S3 through moto's standalone server (real HTTP, real boto3).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from evidence_support import KEY_A, KEY_B, Clock, png
from safestream.errors import ConflictError, InputError, NotFoundError
from safestream.evidence.backends import FilesystemBackend
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


def _stored(ev: EvidenceStore, eid: str) -> bytes:
    return ev.backend.get(ev.record(eid).path)


def _replace(ev: EvidenceStore, eid: str, data: bytes) -> None:
    ev.backend.put_atomic(ev.record(eid).path, data)


def test_round_trip_and_hash(any_evidence: EvidenceStore) -> None:
    evidence = any_evidence
    data = png(1)
    eid = _preserve(evidence, data)
    record = evidence.record(eid)
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.key_id == "k1"
    stored = _stored(evidence, eid)  # only ciphertext reaches the backend
    assert data not in stored and stored.startswith(MAGIC)
    assert [k for k, _ in evidence.backend.list_keys()] == [record.path]
    obj = evidence.get(eid, actor="key:2", reason="confirm match")
    assert obj.content == data
    assert obj.metadata == {"upload_ip": "192.0.2.7", "source_port": 50123}
    actions = [e.action for e in AuditRepository(evidence.store).list_events()]
    assert actions == ["evidence.preserve", "evidence.view"]
    assert AuditRepository(evidence.store).verify().ok


def test_tampered_ciphertext_is_an_integrity_error(any_evidence: EvidenceStore) -> None:
    evidence = any_evidence
    eid = _preserve(evidence)
    raw = bytearray(_stored(evidence, eid))
    raw[len(MAGIC) + 20] ^= 0x01
    _replace(evidence, eid, bytes(raw))
    with pytest.raises(EvidenceIntegrityError, match="authentication failed"):
        evidence.get(eid, actor="k", reason="look at it")
    _replace(evidence, eid, b"not evidence at all")
    with pytest.raises(EvidenceIntegrityError, match="not a safestream evidence object"):
        evidence.verify(eid)


def test_truncated_and_missing_objects(any_evidence: EvidenceStore) -> None:
    evidence = any_evidence
    eid = _preserve(evidence)
    _replace(evidence, eid, MAGIC + b"short")
    with pytest.raises(EvidenceIntegrityError, match="truncated"):
        evidence.verify(eid)
    evidence.backend.delete(evidence.record(eid).path)
    with pytest.raises(EvidenceIntegrityError, match="missing from") as info:
        evidence.verify(eid)
    assert evidence.backend.describe() in str(info.value)
    check = evidence.check_storage()
    assert not check.ok and check.missing == [eid] and check.rows == 1


def test_swapped_objects_fail_authentication(any_evidence: EvidenceStore) -> None:
    evidence = any_evidence
    a, b = _preserve(evidence, png(1)), _preserve(evidence, png(2))
    da, db = _stored(evidence, a), _stored(evidence, b)
    _replace(evidence, a, db)
    _replace(evidence, b, da)
    with pytest.raises(EvidenceIntegrityError):
        evidence.verify(a)
    with pytest.raises(EvidenceIntegrityError):
        evidence.verify(b)


def test_wrong_key_is_an_integrity_error(
    store: Store, any_evidence: EvidenceStore, clock: Clock
) -> None:
    evidence = any_evidence
    eid = _preserve(evidence)
    wrong = EvidenceStore(
        store, evidence.backend, KeyRing.parse(f"k1:{KEY_B}", source="t"), clock=clock
    )
    with pytest.raises(EvidenceIntegrityError, match="key 'k1'"):
        wrong.verify(eid)
    missing = EvidenceStore(
        store, evidence.backend, KeyRing.parse(f"k9:{KEY_B}", source="t"), clock=clock
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


@pytest.mark.parametrize("step", ["_after_put", "_before_commit"])
def test_failure_during_preserve_leaves_nothing(
    any_evidence: EvidenceStore, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    evidence = any_evidence

    def boom(_arg: Any) -> None:
        raise _Crash(step)

    monkeypatch.setattr(evidence, step, boom)
    with pytest.raises(_Crash):
        _preserve(evidence)
    assert evidence.list_objects() == []
    assert list(evidence.backend.list_keys()) == []
    assert AuditRepository(evidence.store).list_events() == []


def test_crash_after_put_leaves_only_an_orphan_that_is_swept(
    any_evidence: EvidenceStore, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    """A killed process runs no clean-up: simulate it by skipping the backend's delete."""
    evidence = any_evidence

    def boom(_conn: Any) -> None:
        raise _Crash("killed")

    monkeypatch.setattr(evidence.backend, "delete", lambda _key: None)
    monkeypatch.setattr(evidence, "_before_commit", boom)
    with pytest.raises(_Crash):
        _preserve(evidence)
    monkeypatch.undo()
    assert evidence.list_objects() == []  # no row: the object does not exist
    leftovers = [k for k, _ in evidence.backend.list_keys()]
    assert len(leftovers) == 1
    check = evidence.check_storage()
    assert check.ok and list(check.orphans) == leftovers
    # The test clock starts in the past of the object's real write time: too young.
    assert evidence.sweep_orphans(min_age_s=3600) == 0  # might be in flight
    clock.advance(timedelta(days=3 * 365))
    assert evidence.sweep_orphans(min_age_s=3600) == 1
    assert list(evidence.backend.list_keys()) == []


def test_preserve_bad_input(any_evidence: EvidenceStore) -> None:
    evidence = any_evidence
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
    assert len(list(evidence.backend.list_keys())) == 1  # refused input stored nothing


def test_report_hold_lasts_a_year_then_purge(any_evidence: EvidenceStore, clock: Clock) -> None:
    evidence = any_evidence
    eid = _preserve(evidence)
    kept = _preserve(evidence, png(5))
    evidence.add_hold(
        kept, actor="k", basis="other", legal_basis="court order 3", hold_for=timedelta(days=800)
    )
    (hold,) = evidence.holds(eid)
    assert hold.expires_at - hold.created_at == timedelta(days=365)
    clock.advance(timedelta(days=364))
    assert evidence.purge_expired() == []
    clock.advance(timedelta(days=2))
    assert evidence.purge_expired() == [eid]
    record = evidence.record(eid)
    assert record.status == "purged" and record.purged_at == clock.now
    assert not evidence.backend.exists(record.path)  # deleted from the bucket / directory
    assert evidence.backend.exists(evidence.record(kept).path)
    assert [k for k, _ in evidence.backend.list_keys()] == [evidence.record(kept).path]
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


def test_key_rotation_reencrypts(store: Store, any_evidence: EvidenceStore, clock: Clock) -> None:
    evidence = any_evidence
    ids = [_preserve(evidence, png(i)) for i in range(3)]
    old_paths = {evidence.record(i).path for i in ids}
    old_blobs = {i: _stored(evidence, i) for i in ids}
    rotated = EvidenceStore(
        store,
        evidence.backend,
        KeyRing.parse(f"k2:{KEY_B}\nk1:{KEY_A}", source="t"),
        clock=clock,
    )
    assert rotated.rotate(actor="admin") == 3
    assert rotated.rotate(actor="admin") == 0
    for i, eid in enumerate(ids):
        assert rotated.record(eid).key_id == "k2"
        assert rotated.get(eid, actor="k", reason="after rotation").content == png(i)
    assert not any(evidence.backend.exists(p) for p in old_paths)
    keys = sorted(k for k, _ in evidence.backend.list_keys())
    assert keys == sorted(f"{i}.k2.ssev" for i in ids)
    assert all(_stored(rotated, i) != old_blobs[i] for i in ids)  # re-encrypted in place
    only_new = EvidenceStore(
        store, evidence.backend, KeyRing.parse(f"k2:{KEY_B}", source="t"), clock=clock
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


def test_path_keeps_working_as_a_filesystem_backend(
    store: Store, tmp_path: Path, ring: KeyRing, clock: Clock
) -> None:
    ev = EvidenceStore(store, tmp_path / "ev", ring, clock=clock)
    assert isinstance(ev.backend, FilesystemBackend) and ev.directory == tmp_path / "ev"
    eid = _preserve(ev)
    assert (tmp_path / "ev" / ev.record(eid).path).is_file()
    assert not [p for p in (tmp_path / "ev").iterdir() if p.name.startswith(".tmp-")]
