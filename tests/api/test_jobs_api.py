"""Bank imports and batch scans as background jobs, end to end: API -> job -> worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_support import auth
from safestream.auth import Role
from safestream.demo import synthetic_image
from safestream.jobs.registry import configured_handlers
from safestream.jobs.worker import Worker, WorkerOptions, WorkerStats
from safestream.signals.hashing import hash_file
from safestream.store.db import Store
from safestream.store.jobs import JobRepository


def md5_list(n: int, start: int = 0) -> bytes:
    return "".join(f"md5 {i:032x}\n" for i in range(start, start + n)).encode()


@pytest.fixture(autouse=True)
def job_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Uploads and scan roots in the test's own temporary directory."""
    monkeypatch.setenv("SAFESTREAM_UPLOAD_DIR", str(tmp_path / "uploads"))
    root = tmp_path / "media"
    root.mkdir()
    monkeypatch.setenv("SAFESTREAM_SCAN_ROOTS", str(root))
    return root


def run_worker(store: Store) -> WorkerStats:
    handlers = configured_handlers(dict(os.environ), store=store)
    return Worker(JobRepository(store), handlers, WorkerOptions(once=True, lease_s=30)).run()


def upload(client: TestClient, key: str, bank: str, data: bytes, query: str = "") -> dict:  # type: ignore[type-arg]
    r = client.post(
        f"/v1/banks/{bank}/import?async=true{query}",
        files={"file": ("hashes.txt", data, "text/plain")},
        headers=auth(key),
    )
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['job']['id']}"
    return r.json()  # type: ignore[no-any-return]


def test_async_import_runs_in_the_worker_and_is_idempotent(
    client: TestClient, role_keys: dict[Role, str], store: Store, tmp_path: Path
) -> None:
    key = role_keys[Role.CURATOR]
    client.post("/v1/banks", json={"name": "b"}, headers=auth(key))
    first = upload(client, key, "b", md5_list(50))
    assert first["created"] is True and first["job"]["status"] == "queued"
    again = upload(client, key, "b", md5_list(50))
    assert again["created"] is False and again["job"]["id"] == first["job"]["id"]
    other = upload(client, key, "b", md5_list(50), "&skip_invalid=true")
    assert other["job"]["id"] != first["job"]["id"]  # other options: another job
    assert list((tmp_path / "uploads").glob("*.list")) != []

    metrics = client.get("/metrics", headers=auth(role_keys[Role.AUDITOR])).text
    assert "safestream_queue_depth 2.0" in metrics

    # The synchronous default still works (and sees nothing queued yet).
    assert client.get("/v1/banks/b", headers=auth(key)).json()["entry_count"] == 0
    assert run_worker(store).done == 2
    job = client.get(first["location"], headers=auth(key)).json()
    assert job["status"] == "done" and job["attempts"] == 1 and job["last_error"] is None
    assert job["kind"] == "bank_import"
    assert (
        job["result"]["entries_added"]
        + client.get(other["location"], headers=auth(key)).json()["result"]["entries_added"]
        == 50
    )
    assert client.get("/v1/banks/b", headers=auth(key)).json()["entry_count"] == 50
    # Both jobs are finished, so the stored upload was removed.
    assert list((tmp_path / "uploads").glob("*")) == []
    # Re-submitting a finished import gives the finished job; nothing runs again.
    done = upload(client, key, "b", md5_list(50))
    assert done["job"]["id"] == first["job"]["id"] and done["job"]["status"] == "done"
    assert list((tmp_path / "uploads").glob("*")) == []
    metrics = client.get("/metrics", headers=auth(role_keys[Role.AUDITOR])).text
    assert "safestream_queue_depth 0.0" in metrics

    listed = client.get("/v1/jobs?status=done", headers=auth(key)).json()
    assert {j["id"] for j in listed["jobs"]} == {first["job"]["id"], other["job"]["id"]}


def test_malformed_list_is_dead_lettered_with_its_line_and_adds_nothing(
    client: TestClient, role_keys: dict[Role, str], store: Store
) -> None:
    key = role_keys[Role.CURATOR]
    client.post("/v1/banks", json={"name": "b"}, headers=auth(key))
    data = md5_list(3) + b"md5 not-a-digest\n" + md5_list(3, start=10)
    accepted = upload(client, key, "b", data, "&format=te")
    stats = run_worker(store)
    assert stats.dead == 1 and stats.done == 0
    job = client.get(accepted["location"], headers=auth(key)).json()
    assert job["status"] == "dead" and job["attempts"] == 1
    assert job["last_error"].startswith("hashes.txt:4: ")
    assert client.get("/v1/banks/b", headers=auth(key)).json()["entry_count"] == 0
    [dead] = JobRepository(store).dead_letters()
    assert dead.job_id == accepted["job"]["id"] and "hashes.txt:4:" in (dead.last_error or "")


def test_async_import_checks_bank_and_size_before_queueing(
    client: TestClient, role_keys: dict[Role, str], store: Store, tmp_path: Path
) -> None:
    key = role_keys[Role.CURATOR]
    r = client.post(
        "/v1/banks/nope/import?async=true",
        files={"file": ("h.txt", md5_list(2), "text/plain")},
        headers=auth(key),
    )
    assert r.status_code == 404
    client.post("/v1/banks", json={"name": "b"}, headers=auth(key))
    big = b"#" * (2 * 1024 * 1024 - 1000) + md5_list(100)
    r = client.post(
        "/v1/banks/b/import?async=true",
        files={"file": ("h.txt", big, "text/plain")},
        headers=auth(key),
    )
    assert r.status_code in (400, 413)
    assert JobRepository(store).recent() == []
    assert [p.name for p in (tmp_path / "uploads").glob("*")] == []


def test_jobs_are_visible_to_their_area_only(
    client: TestClient, role_keys: dict[Role, str], job_dirs: Path
) -> None:
    curator, integrator = role_keys[Role.CURATOR], role_keys[Role.INTEGRATOR]
    client.post("/v1/banks", json={"name": "b"}, headers=auth(curator))
    imp = upload(client, curator, "b", md5_list(1))["job"]["id"]
    scan = client.post("/v1/scans", json={"path": str(job_dirs)}, headers=auth(integrator))
    assert scan.status_code == 202
    scan_id = scan.json()["job"]["id"]
    assert client.get(f"/v1/jobs/{imp}", headers=auth(curator)).status_code == 200
    assert client.get(f"/v1/jobs/{imp}", headers=auth(integrator)).status_code == 404
    assert client.get(f"/v1/jobs/{scan_id}", headers=auth(curator)).status_code == 404
    assert client.get(f"/v1/jobs/{scan_id}", headers=auth(integrator)).status_code == 200
    assert client.get(f"/v1/scans/{imp}", headers=auth(integrator)).status_code == 404
    admin = auth(role_keys[Role.ADMIN])
    assert {j["id"] for j in client.get("/v1/jobs", headers=admin).json()["jobs"]} == {
        imp,
        scan_id,
    }
    assert [j["id"] for j in client.get("/v1/jobs", headers=auth(curator)).json()["jobs"]] == [imp]
    assert client.get("/v1/jobs/999999", headers=admin).status_code == 404


def test_batch_scan_end_to_end_with_paged_results(
    client: TestClient, role_keys: dict[Role, str], store: Store, job_dirs: Path
) -> None:
    images = job_dirs / "batch"
    (images / "sub").mkdir(parents=True)
    for i in range(5):
        folder = images / "sub" if i % 2 else images
        synthetic_image(100 + i, (160, 120)).save(folder / f"img{i}.png")
    (images / "broken.jpg").write_bytes(b"not an image")
    known = hash_file(images / "img0.png")
    curator = auth(role_keys[Role.CURATOR])
    client.post("/v1/banks", json={"name": "known"}, headers=curator)
    client.post(
        "/v1/banks/known/entries",
        json={"entries": [{"signal_type": "md5", "value": known.md5}]},
        headers=curator,
    )
    h = auth(role_keys[Role.INTEGRATOR])
    r = client.post("/v1/scans", json={"path": str(images)}, headers=h)
    assert r.status_code == 202 and r.headers["location"] == f"/v1/jobs/{r.json()['job']['id']}"
    job_id = r.json()["job"]["id"]
    queued = client.get(f"/v1/scans/{job_id}", headers=h).json()
    assert queued["job"]["status"] == "queued" and queued["files_done"] == 0
    assert run_worker(store).done == 1

    status = client.get(f"/v1/scans/{job_id}", headers=h).json()
    assert status["job"]["status"] == "done" and status["files_done"] == 6
    assert status["outcomes"] == {"match": 1, "no_match": 4, "error": 1}
    assert status["job"]["result"]["files"] == 6
    matches = client.get(f"/v1/scans/{job_id}/results?outcome=match", headers=h).json()
    [match] = matches["results"]
    assert match["path"] == str((images / "img0.png").resolve())
    assert match["matches"][0]["bank"] == "known"
    errors = client.get(f"/v1/scans/{job_id}/results?outcome=error", headers=h).json()
    assert errors["results"][0]["error"]["kind"] == "not_an_image"

    seen: list[str] = []
    after = 0
    while True:
        page = client.get(f"/v1/scans/{job_id}/results?limit=4&after_id={after}", headers=h).json()
        seen += [r["path"] for r in page["results"]]
        if page["next_after_id"] is None:
            break
        after = page["next_after_id"]
    assert len(seen) == len(set(seen)) == 6


def test_scan_paths_must_stay_inside_the_roots(
    client: TestClient,
    role_keys: dict[Role, str],
    store: Store,
    job_dirs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = auth(role_keys[Role.INTEGRATOR])
    outside = tmp_path / "private"
    outside.mkdir()
    (job_dirs / "inside").mkdir()
    (job_dirs / "escape").symlink_to(outside)

    def post(path: str) -> int:
        return client.post("/v1/scans", json={"path": path}, headers=h).status_code

    assert post(str(outside)) == 403  # absolute path elsewhere
    assert post(f"{job_dirs}/inside/../../private") == 403  # .. out of the root
    assert post(str(job_dirs / "escape")) == 403  # a symlink out of the root
    assert post("/") == 403
    assert post("inside") == 400  # relative
    assert post(str(job_dirs / "missing")) == 400
    assert post(f"{job_dirs}/inside/../inside") == 202  # .. that stays inside is fine
    assert (
        client.post("/v1/scans", json={"path": str(job_dirs), "url": "x"}, headers=h).status_code
        == 422
    )
    monkeypatch.setenv("SAFESTREAM_SCAN_ROOTS", "")
    r = client.post("/v1/scans", json={"path": str(job_dirs)}, headers=h)
    assert r.status_code == 403 and "SAFESTREAM_SCAN_ROOTS" in r.json()["detail"]
    assert {j.kind for j in JobRepository(store).recent()} == {"batch_scan"}
    assert len(JobRepository(store).recent()) == 1


def test_scan_idempotency_key_gives_the_same_job(
    client: TestClient, role_keys: dict[Role, str], job_dirs: Path
) -> None:
    h = {**auth(role_keys[Role.INTEGRATOR]), "Idempotency-Key": "nightly-2026-11-29"}
    one = client.post("/v1/scans", json={"path": str(job_dirs)}, headers=h).json()
    two = client.post("/v1/scans", json={"path": str(job_dirs)}, headers=h).json()
    assert one["job"]["id"] == two["job"]["id"] and two["created"] is False
    plain = auth(role_keys[Role.INTEGRATOR])
    three = client.post("/v1/scans", json={"path": str(job_dirs)}, headers=plain).json()
    assert three["job"]["id"] != one["job"]["id"]
