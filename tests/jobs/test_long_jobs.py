"""Long jobs: lease renewal, bank imports killed mid-way, batch scans resumed."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from safestream.demo import synthetic_image
from safestream.jobs.bank_import import BankImportHandler, UploadSpool, idempotency_key
from safestream.jobs.base import JobContext
from safestream.jobs.batch_scan import BatchScanHandler, ScanPathError, resolve_scan_path
from safestream.jobs.worker import Worker, WorkerOptions
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from safestream.store.jobs import Job, JobRepository
from safestream.store.models import ImportRow, StagedEntryRow, utcnow
from safestream.store.scans import ScanResultRepository
from webhook_support import start_worker, store_url

# -- leases ---------------------------------------------------------------------------


def test_extend_lease_needs_the_current_token(store: Store) -> None:
    jobs = JobRepository(store)
    jobs.enqueue("note", {}, idempotency_key="a")
    job = jobs.claim("w1", lease_s=1)
    assert job is not None and job.lease_expires_at is not None
    assert jobs.extend_lease(job, lease_s=600)
    renewed = jobs.get(job.id).lease_expires_at
    assert renewed is not None and renewed > job.lease_expires_at
    assert jobs.set_result(job, {"lines_done": 5})
    assert jobs.get(job.id).result == {"lines_done": 5}
    # Another worker takes the job over (as after an expired lease): the first
    # worker's token no longer renews, records progress or completes it.
    later = utcnow() + timedelta(hours=1)
    thief = jobs.claim("w2", lease_s=30, now=later)
    assert thief is not None and thief.id == job.id
    assert not jobs.extend_lease(job, lease_s=600)
    assert not jobs.set_result(job, {"lines_done": 6})
    assert not jobs.complete(job, result={"x": 1})
    assert jobs.complete(thief, result={"x": 2})
    assert jobs.get(job.id).result == {"x": 2}


class _Slow:
    """A long job: runs for ``hold_s`` seconds, checking its lease as it goes."""

    kind = "slow"

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.started = threading.Event()

    def run(self, job: Job, ctx: JobContext) -> dict[str, Any]:
        self.started.set()
        deadline = time.monotonic() + self.hold_s
        while time.monotonic() < deadline:
            ctx.check()
            time.sleep(0.02)
        return {"held": True}


def test_heartbeat_keeps_a_long_job_leased(store: Store) -> None:
    jobs = JobRepository(store)
    job, _ = jobs.enqueue("slow", {}, idempotency_key="slow")
    handler = _Slow(hold_s=1.5)
    worker = Worker(jobs, [handler], WorkerOptions(lease_s=0.3, once=True))
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert handler.started.wait(30)
    # The job runs for five leases; another worker polling all along never gets it.
    while thread.is_alive():
        assert jobs.claim("other", lease_s=30, kinds=("slow",)) is None
        time.sleep(0.05)
    thread.join()
    assert worker.stats.done == 1
    done = jobs.get(job.id)
    assert (done.status, done.attempts, done.result) == ("done", 1, {"held": True})


def test_a_job_taken_over_stops_and_records_nothing(store: Store) -> None:
    jobs = JobRepository(store)
    job, _ = jobs.enqueue("slow", {}, idempotency_key="slow")
    handler = _Slow(hold_s=60)
    worker = Worker(jobs, [handler], WorkerOptions(lease_s=0.3, once=True))
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert handler.started.wait(30)
    # As if the heartbeat had stalled past the lease: another worker claims it.
    thief = jobs.claim("other", lease_s=30, now=utcnow() + timedelta(hours=1))
    assert thief is not None
    thread.join(30)
    assert not thread.is_alive()
    assert worker.stats.lost == 1 and worker.stats.done == 0
    assert jobs.get(job.id).lease_token == thief.lease_token


# -- bank imports ---------------------------------------------------------------------


def _queue_import(store: Store, uploads: Path, bank: str, data: bytes) -> Job:
    with UploadSpool(uploads, 1 << 30) as spool:
        spool.write(data)
        digest = spool.sha256
        job, _ = JobRepository(store).enqueue(
            "bank_import",
            {"bank": bank, "upload_sha256": digest, "format": "md5", "filename": "big.txt"},
            idempotency_key=idempotency_key(bank, digest, "md5", False),
        )
        spool.store()
    return job


def _lines_done(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.coalesce(func.max(ImportRow.lines_done), 0))) or 0)


@pytest.mark.slow
def test_worker_killed_mid_import_is_resumed_and_every_entry_lands_once(
    store: Store, tmp_path: Path
) -> None:
    n = 20_000
    banks = BankRepository(store)
    banks.create_bank("big")
    uploads = tmp_path / "uploads"
    job = _queue_import(store, uploads, "big", "".join(f"{i:032x}\n" for i in range(n)).encode())
    env = {
        "SAFESTREAM_DATABASE_URL": store_url(store),
        "SAFESTREAM_UPLOAD_DIR": str(uploads),
        "SAFESTREAM_IMPORT_CHUNK_LINES": "20",
        "SAFESTREAM_WEBHOOK_URL": "",
        "SAFESTREAM_WEBHOOK_SECRET": "",
    }
    first = start_worker(
        {**os.environ, **env}, "--lease-s", "1", "--poll-interval", "0.05", cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 60
        # Kill once some chunks are checkpointed, well before the list is done.
        while _lines_done(store) < 100 and time.monotonic() < deadline:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            time.sleep(0.005)
        first.kill()
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    checkpoint = _lines_done(store)
    assert 100 <= checkpoint < n, "the worker finished before it could be killed"
    killed = JobRepository(store).get(job.id)
    assert killed.status == "running" and banks.get_bank("big").entry_count == 0
    # Nothing is published until the end: the bank is untouched mid-import.

    # Once the dead worker's lease lapses, another worker takes the job over.
    while (JobRepository(store).get(job.id).lease_expires_at or utcnow()) > utcnow():
        time.sleep(0.1)
    handler = BankImportHandler(store, uploads, chunk_lines=5000)
    stats = Worker(JobRepository(store), [handler], WorkerOptions(once=True, lease_s=30)).run()
    assert stats.done == 1
    done = JobRepository(store).get(job.id)
    assert (done.status, done.attempts) == ("done", 2)
    assert done.result is not None
    assert done.result["resumed_from_line"] >= checkpoint
    assert done.result["entries_added"] == n and done.result["duplicates"] == 0
    assert banks.get_bank("big").entry_count == n
    values = [e.value for e in banks.iter_entries("big")]
    assert len(values) == len(set(values)) == n
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(StagedEntryRow)) == 0
    assert list(uploads.glob("*")) == []


def test_import_published_before_the_worker_died_is_not_counted_again(
    store: Store, tmp_path: Path
) -> None:
    banks = BankRepository(store)
    banks.create_bank("b")
    uploads = tmp_path / "uploads"
    job = _queue_import(store, uploads, "b", "".join(f"{i:032x}\n" for i in range(10)).encode())
    jobs = JobRepository(store)
    handler = BankImportHandler(store, uploads)
    claimed = jobs.claim("w1", lease_s=30)
    assert claimed is not None
    handler.run(claimed, JobContext(claimed, jobs))  # published; the worker dies here
    retry = jobs.claim("w2", lease_s=30, now=utcnow() + timedelta(hours=1))
    assert retry is not None and retry.id == job.id
    result = handler.run(retry, JobContext(retry, jobs))
    assert result["entries_added"] == 10 and banks.get_bank("b").entry_count == 10


# -- batch scans ----------------------------------------------------------------------


def test_scan_path_resolution(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (root / "link").symlink_to(tmp_path / "out")
    (root / "inner-link").symlink_to(root / "a")
    real_root = root.resolve()
    assert resolve_scan_path(str(root / "a"), [real_root]) == (root / "a").resolve()
    assert resolve_scan_path(str(root / "inner-link"), [real_root]) == (root / "a").resolve()
    assert resolve_scan_path(str(root), [real_root]) == real_root
    for bad in (str(root / "link"), f"{root}/a/../../out", str(tmp_path), "/etc"):
        with pytest.raises(ScanPathError):
            resolve_scan_path(bad, [real_root])
    with pytest.raises(ScanPathError, match="disabled"):
        resolve_scan_path(str(root), [])


def test_resumed_scan_skips_files_done_and_never_duplicates(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "media"
    root.mkdir()
    for i in range(6):
        synthetic_image(i, (128, 96)).save(root / f"{i}.png")
    (root / "outside-link.png").symlink_to(tmp_path / "elsewhere.png")
    synthetic_image(99, (128, 96)).save(tmp_path / "elsewhere.png")
    jobs = JobRepository(store)
    job, _ = jobs.enqueue("batch_scan", {"path": str(root.resolve())}, idempotency_key="s")
    results = ScanResultRepository(store)
    # A killed earlier attempt stored two files before it died.
    done_before = [str((root / f"{i}.png").resolve()) for i in (0, 3)]
    assert results.add(job.id, [(p, "no_match", {"earlier": True}) for p in done_before]) == 2
    assert results.add(job.id, [(done_before[0], "no_match", {"again": True})]) == 0
    handler = BatchScanHandler(store, roots=[root.resolve()])
    stats = Worker(jobs, [handler], WorkerOptions(once=True, lease_s=30)).run()
    assert stats.done == 1
    finished = jobs.get(job.id)
    assert finished.result is not None
    assert finished.result["files"] == 6 and finished.result["resumed_after_files"] == 2
    page = results.page(job.id, limit=100)
    assert len({r.path for r in page}) == len(page) == 6  # the symlink was not followed
    assert sum(1 for r in page if r.record.get("earlier")) == 2


def test_worker_rechecks_the_scan_roots(store: Store, tmp_path: Path) -> None:
    jobs = JobRepository(store)
    (tmp_path / "was-allowed").mkdir()
    job, _ = jobs.enqueue("batch_scan", {"path": str(tmp_path / "was-allowed")})
    handler = BatchScanHandler(store, roots=[(tmp_path / "other").resolve()])
    assert Worker(jobs, [handler], WorkerOptions(once=True)).run().dead == 1
    assert "outside" in (jobs.get(job.id).last_error or "")


def test_upload_dir_defaults_next_to_the_sqlite_database(store: Store, tmp_path: Path) -> None:
    from safestream.jobs.bank_import import upload_dir

    assert upload_dir(store, {"SAFESTREAM_UPLOAD_DIR": str(tmp_path / "u")}) == tmp_path / "u"
    if store.dialect == "sqlite":
        assert store.engine.url.database is not None
        assert upload_dir(store, {}) == Path(store.engine.url.database).parent / "uploads"
    else:
        assert upload_dir(store, {}).name == "uploads"
