"""``open_case``: a live detection becomes a live case, frames preserved encrypted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evidence_support import KEY_A
from safestream.cases.service import CaseService
from safestream.engine import Engine
from safestream.engine.video import add_video
from safestream.evidence.crypto import KeyRing
from safestream.evidence.store import EvidenceStore
from safestream.live import Monitor, SampleAnalyzer, Source, StreamContext
from safestream.live.cases import LiveCaseRecord, LiveCaseWriter, evidence_from_env
from safestream.signals.video import hash_video
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from safestream.store.service import CheckRepository
from video_support import encode, known_frame, other_frame, shots

FPS = 10


def test_banked_frame_on_a_stream_opens_a_live_case(
    store: Store, repo: BankRepository, tmp_path: Path
) -> None:
    known = [known_frame(i) for i in (71, 72)]
    clip = tmp_path / "known.mp4"
    encode(clip, shots(known, 1, FPS), fps=FPS)
    repo.create_bank("live-known", source="test")
    add_video(repo, "live-known", hash_video(clip), external_id="clip-case")
    stream = tmp_path / "stream.ts"
    filler = [other_frame(1400 + i) for i in range(4)]
    encode(
        stream,
        shots(filler[:2] + known + filler[2:], 1, FPS),
        fps=FPS,
        gop=2 * FPS,
        container_format="mpegts",
    )
    evidence = EvidenceStore(
        store, tmp_path / "evidence", KeyRing.parse(f"k1:{KEY_A}", source="test")
    )
    writer = LiveCaseWriter(CheckRepository(store), evidence)
    written: list[LiveCaseRecord] = []
    events: list[dict[str, Any]] = []
    monitor = Monitor(
        SampleAnalyzer(Engine(repo)),
        on_event=events.append,
        per_stream_queue=64,
        actions={"open_case": lambda r: written.append(writer(r))},
    )
    ctx = StreamContext(
        "cam-1",
        account_id="acct-live",
        username="streamer",
        profile_url="https://example.test/u/streamer",
        ip_address="203.0.113.9",
        source_port=40123,
    )
    try:
        monitor.add(Source(url=str(stream)), ctx)
        assert monitor.wait(timeout=120)
    finally:
        monitor.close()
    assert len(written) == 1, events
    (record,) = written
    assert record.evidence_error is None and len(record.evidence_ids) == 1

    service = CaseService(store)
    assert service.sync() == 1
    cases = [c for c in service.list() if c.account_id == "acct-live"]
    assert len(cases) == 1
    case = service.to_dict(cases[0])
    (event,) = case["events"]
    assert event["kind"] == "live"
    assert event["content_id"] == record.content_id
    ctx_out = event["record"]["context"]
    assert ctx_out["ip_address"] == "203.0.113.9" and ctx_out["source_port"] == 40123
    assert ctx_out["surface"] == "live" and ctx_out["username"] == "streamer"
    assert ctx_out["profile_url"] == "https://example.test/u/streamer"
    assert event["record"]["matches"][0]["bank"] == "live-known"
    assert event["record"]["hashes"]["pdq"] and event["record"]["hashes"]["sha256"]

    check = CheckRepository(store).get(record.content_id)
    live = check["signals"]["live"]
    assert live["stream_id"] == "cam-1"
    assert live["stream_started_at"] == ctx.started_at.isoformat()
    (frame,) = live["frames"]
    assert 2.0 <= frame["stream_time_s"] <= 5.0  # shown from 2 s to 4 s
    assert frame["evidence_id"] == record.evidence_ids[0]
    assert frame["sha256"] == check["signals"]["sha256"]

    # The frame is kept encrypted: no PNG anywhere on disk, but it decrypts to one.
    on_disk = [p.read_bytes() for p in (tmp_path / "evidence").rglob("*") if p.is_file()]
    assert on_disk and not any(b"\x89PNG" in blob for blob in on_disk)
    obj = evidence.get(record.evidence_ids[0], actor="test", reason="verify the live frame")
    assert obj.content.startswith(b"\x89PNG") and obj.sha256 == frame["sha256"]
    assert obj.metadata["content_id"] == record.content_id


def test_evidence_store_only_when_keys_are_configured(store: Store, tmp_path: Path) -> None:
    assert evidence_from_env(store, {}) is None
    env = {"SAFESTREAM_EVIDENCE_KEYS": f"k1:{KEY_A}", "SAFESTREAM_EVIDENCE_DIR": str(tmp_path)}
    assert isinstance(evidence_from_env(store, env), EvidenceStore)
