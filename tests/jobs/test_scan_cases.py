"""Batch-scan detections become check records (``surface="scan"``) and so cases.

Media are synthetic images (``safestream.demo.synthetic_image``); the bank holds
the hashes of one of them. Accounts and URLs are documentation values.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from api_support import auth
from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.auth import Role
from safestream.banks.formats import HashRecord
from safestream.cases.model import EventKind
from safestream.cases.service import CaseService
from safestream.demo import synthetic_image
from safestream.jobs.base import JobContext
from safestream.jobs.batch_scan import BatchScanHandler, scan_content_id
from safestream.jobs.worker import Worker, WorkerOptions
from safestream.reports.build import BuildOptions, build_report
from safestream.reports.model import Contact, Reporter
from safestream.signals.hashing import hash_file
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from safestream.store.models import CheckRow, ScanResultRow, utcnow
from safestream.store.service import KeyRepository

ACCOUNT = {
    "account_id": "acct-scan-1",
    "username": "scan-user",
    "profile_url": "https://example.com/u/scan-user",
}


def _media(root: Path, *, banked: bool = True) -> Path:
    """Three synthetic images (the first banked as known material when ``banked``)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        synthetic_image(300 + i, (160, 120)).save(root / f"img{i}.png")
    return root / "img0.png"


def _bank(store: Store, image: Path) -> str:
    h = hash_file(image)
    banks = BankRepository(store)
    banks.create_bank("known")
    banks.add_entries("known", [HashRecord(signal_type="sha256", value=h.sha256)])
    return h.sha256


def _checks(store: Store) -> list[CheckRow]:
    with store.session() as s:
        return list(s.scalars(select(CheckRow).order_by(CheckRow.id)))


def _run(store: Store, root: Path) -> int:
    handler = BatchScanHandler(store, roots=[root.resolve()])
    stats = Worker(JobRepository(store), [handler], WorkerOptions(once=True, lease_s=30)).run()
    return stats.done


def test_a_scan_match_becomes_a_case_for_the_account(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "media"
    image = _media(root)
    sha256 = _bank(store, image)
    jobs = JobRepository(store)
    job, _ = jobs.enqueue("batch_scan", {"path": str(root.resolve()), **ACCOUNT})
    assert _run(store, root) == 1

    [check] = _checks(store)  # only the match, not the two clean files
    real = str(image.resolve())
    assert check.surface == "scan" and check.outcome == "match"
    assert check.account_id == ACCOUNT["account_id"]
    assert check.username == ACCOUNT["username"]
    assert check.profile_url == ACCOUNT["profile_url"]
    assert check.content_id == scan_content_id(job.id, real)
    assert check.signals["scan_path"] == real and check.signals["sha256"] == sha256
    assert any(real in r for r in check.reasons)

    cases = CaseService(store)
    assert cases.sync() == 1
    [case] = cases.list()
    assert case.account_id == ACCOUNT["account_id"]
    [event] = case.events
    assert event.sha256 == sha256 and event.kind == EventKind.KNOWN
    assert event.record["hashes"]["sha256"] == sha256
    assert event.record["file"] == {"path": real, "scan_job_id": job.id}
    assert event.record["context"]["surface"] == "scan"
    # Priority treats a scan like an upload: known material, not live.
    reasons = " ".join(cases.to_dict(case)["priority_reasons"])
    assert "known material" in reasons and "live" not in reasons


def test_a_retried_scan_adds_no_second_record(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "media"
    _bank(store, _media(root))
    jobs = JobRepository(store)
    job, _ = jobs.enqueue("batch_scan", {"path": str(root.resolve()), **ACCOUNT})
    handler = BatchScanHandler(store, roots=[root.resolve()])
    later = utcnow()

    def attempt() -> dict[str, Any]:
        nonlocal later
        later += timedelta(hours=1)  # the previous worker died: its lease ran out
        claimed = jobs.claim("w", lease_s=30, now=later)
        assert claimed is not None and claimed.id == job.id
        return handler.run(claimed, JobContext(claimed, jobs))

    attempt()  # scans everything, then the worker dies before completing the job
    assert len(_checks(store)) == 1
    assert CaseService(store).sync() == 1
    # The retry skips the files already done ...
    assert attempt()["resumed_after_files"] == 3
    assert len(_checks(store)) == 1
    # ... and even with the results lost, the check record is not written twice.
    with store.session() as s:
        s.execute(delete(ScanResultRow).where(ScanResultRow.job_id == job.id))
    result = attempt()
    assert result["files"] == 3 and result["outcomes"] == {"match": 1, "no_match": 2}
    assert len(_checks(store)) == 1
    assert CaseService(store).sync() == 0

    # A new job over the same folder is a new detection of the same file: same case.
    jobs.enqueue("batch_scan", {"path": str(root.resolve()), **ACCOUNT})
    assert _run(store, root) == 1
    assert len(_checks(store)) == 2
    cases = CaseService(store)
    assert cases.sync() == 1
    [case] = cases.list()
    assert len(case.events) == 2 and len(case.files()) == 1


def test_clean_files_and_errors_add_no_check_record(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "media"
    _media(root)
    (root / "broken.jpg").write_bytes(b"not an image")
    BankRepository(store).create_bank("known")
    jobs = JobRepository(store)
    job, _ = jobs.enqueue("batch_scan", {"path": str(root.resolve())})
    assert _run(store, root) == 1
    assert jobs.get(job.id).result is not None
    assert _checks(store) == []
    assert CaseService(store).sync() == 0


def test_a_scan_without_an_account_still_makes_a_case(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "media"
    _bank(store, _media(root))
    JobRepository(store).enqueue("batch_scan", {"path": str(root.resolve())})
    assert _run(store, root) == 1
    [check] = _checks(store)
    assert check.account_id is None and check.surface == "scan"
    cases = CaseService(store)
    assert cases.sync() == 1
    assert cases.list()[0].account_id is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", ""),
        ("account_id", 12),
        ("username", "x" * 201),
        ("profile_url", "javascript:alert(1)"),
    ],
)
def test_a_job_with_a_bad_account_context_is_refused_and_writes_nothing(
    store: Store, tmp_path: Path, field: str, value: object
) -> None:
    root = tmp_path / "media"
    _bank(store, _media(root))
    jobs = JobRepository(store)
    job, _ = jobs.enqueue("batch_scan", {"path": str(root.resolve()), field: value})
    handler = BatchScanHandler(store, roots=[root.resolve()])
    assert Worker(jobs, [handler], WorkerOptions(once=True)).run().dead == 1
    assert field in (jobs.get(job.id).last_error or "")
    assert _checks(store) == []
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(ScanResultRow)) == 0


def test_a_report_of_a_scan_case_names_the_file_not_an_upload_time(
    store: Store, tmp_path: Path
) -> None:
    root = tmp_path / "media"
    _bank(store, _media(root))
    JobRepository(store).enqueue("batch_scan", {"path": str(root.resolve()), **ACCOUNT})
    assert _run(store, root) == 1
    cases = CaseService(store)
    cases.sync()
    [case] = cases.list()
    cases.decide(case.id, "in_review", reason_code="assigned", actor="reviewer:test")
    cases.decide(
        case.id, "confirmed", reason_code="known_material_confirmed", actor="reviewer:test"
    )
    reporter = Reporter(
        organisation="Example Platform",
        contact=Contact(name="Ada Example", email="trust@example.com"),
    )
    report = build_report(cases.get(case.id), BuildOptions(reporter=reporter))
    [file] = report.files
    assert file.original_file_name == "img0.png"
    assert file.upload_date_time is None  # the scan's time is not when it was uploaded
    assert file.detected_by == ["bank:known"]
    [person] = report.persons
    assert person.esp_identifier == ACCOUNT["account_id"]
    assert person.profile_urls == [ACCOUNT["profile_url"]]


# -- over HTTP -------------------------------------------------------------------------


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, settings=ServiceSettings(refresh_interval_s=0.05))) as c:
        yield c


def test_scan_api_carries_the_account_into_a_case(
    client: TestClient, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "media"
    image = _media(root)
    monkeypatch.setenv("SAFESTREAM_SCAN_ROOTS", str(root.resolve()))
    keys = KeyRepository(store)
    integrator = auth(keys.create(Role.INTEGRATOR.value, "t")[0])
    reviewer = auth(keys.create(Role.REVIEWER.value, "t")[0])
    curator = auth(keys.create(Role.CURATOR.value, "t")[0])
    client.post("/v1/banks", json={"name": "known"}, headers=curator)
    client.post(
        "/v1/banks/known/entries",
        json={"entries": [{"signal_type": "md5", "value": hash_file(image).md5}]},
        headers=curator,
    )
    r = client.post("/v1/scans", json={"path": str(root), **ACCOUNT}, headers=integrator)
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]["id"]
    assert {k: JobRepository(store).get(job_id).payload.get(k) for k in ACCOUNT} == ACCOUNT
    assert _run(store, root) == 1

    assert client.post("/v1/cases/sync", headers=reviewer).status_code == 200
    listed = client.get("/v1/cases", headers=reviewer).json()
    [case] = listed["cases"] if isinstance(listed, dict) else listed
    assert case["account_id"] == ACCOUNT["account_id"]
    full = client.get(f"/v1/cases/{case['id']}", headers=reviewer).json()
    [event] = full["events"]
    assert event["record"]["file"]["path"] == str(image.resolve())
    assert event["record"]["context"]["profile_url"] == ACCOUNT["profile_url"]


@pytest.mark.parametrize(
    "extra",
    [
        {"account_id": ""},
        {"username": "u" * 201},
        {"profile_url": "ftp://example.com/u/1"},
        {"account_id": ["a"]},
    ],
)
def test_scan_api_refuses_a_bad_account_context(
    client: TestClient,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: dict[str, object],
) -> None:
    root = tmp_path / "media"
    root.mkdir()
    monkeypatch.setenv("SAFESTREAM_SCAN_ROOTS", str(root.resolve()))
    integrator = auth(KeyRepository(store).create(Role.INTEGRATOR.value, "t")[0])
    r = client.post("/v1/scans", json={"path": str(root), **extra}, headers=integrator)
    assert r.status_code in (400, 422), r.text
    assert next(iter(extra)) in r.text
    assert JobRepository(store).recent() == []
