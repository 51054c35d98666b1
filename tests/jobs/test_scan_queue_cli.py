"""`safestream scan --queue` queues batch-scan jobs that `safestream worker --once` runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from safestream.cli import cli
from safestream.demo import synthetic_image
from safestream.store.db import Store
from safestream.store.scans import ScanResultRepository


def test_scan_queue_then_worker_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "media"
    (root / "day1").mkdir(parents=True)
    for i in range(3):
        synthetic_image(i, (128, 96)).save(root / "day1" / f"{i}.png")
    monkeypatch.setenv("SAFESTREAM_SCAN_ROOTS", str(root))
    monkeypatch.delenv("SAFESTREAM_WEBHOOK_URL", raising=False)
    data = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()

    outside = runner.invoke(cli, [*data, "scan", "--queue", str(tmp_path)])
    assert outside.exit_code == 2 and "outside" in outside.output

    queued = runner.invoke(cli, [*data, "scan", "--queue", "--dihedral", str(root / "day1")])
    assert queued.exit_code == 0, queued.output
    [job] = json.loads(queued.output)
    assert job["kind"] == "batch_scan" and job["status"] == "queued"

    ran = runner.invoke(cli, [*data, "worker", "--once"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["done"] == 1
    shown = json.loads(runner.invoke(cli, [*data, "jobs", "show", str(job["id"])]).output)
    assert shown["status"] == "done" and shown["result"]["files"] == 3
    store = Store.open(data_dir=tmp_path / "data")
    try:
        assert ScanResultRepository(store).counts(job["id"]) == {"no_match": 3}
    finally:
        store.dispose()


def test_scan_queue_names_the_account_and_its_match_becomes_a_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "media"
    root.mkdir()
    synthetic_image(5, (256, 192)).save(root / "known.png")
    synthetic_image(6, (256, 192)).save(root / "other.png")
    monkeypatch.setenv("SAFESTREAM_SCAN_ROOTS", str(root))
    monkeypatch.delenv("SAFESTREAM_WEBHOOK_URL", raising=False)
    data = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    hashed = json.loads(runner.invoke(cli, ["hash", str(root / "known.png")]).output)
    assert runner.invoke(cli, [*data, "bank", "create", "known"]).exit_code == 0
    added = runner.invoke(cli, [*data, "bank", "add", "known", hashed["pdq"]])
    assert added.exit_code == 0, added.output

    local = runner.invoke(cli, [*data, "scan", "--account-id", "acct-7", str(root)])
    assert local.exit_code == 2 and "only apply with --queue" in local.output
    bad = runner.invoke(
        cli, [*data, "scan", "--queue", "--profile-url", "ftp://x.example/u", str(root)]
    )
    assert bad.exit_code == 2 and "profile_url must be an http(s) URL" in bad.output

    queued = runner.invoke(
        cli,
        [*data, "scan", "--queue", "--account-id", "acct-7", "--username", "u7", str(root)],
    )
    assert queued.exit_code == 0, queued.output
    [job] = json.loads(queued.output)
    ran = runner.invoke(cli, [*data, "worker", "--once"])
    assert ran.exit_code == 0, ran.output
    assert runner.invoke(cli, [*data, "cases", "sync"]).exit_code == 0
    listed = runner.invoke(cli, [*data, "cases", "list"])
    assert listed.exit_code == 0, listed.output
    cases = json.loads(listed.output)
    cases = cases["cases"] if isinstance(cases, dict) else cases
    assert [c["account_id"] for c in cases] == ["acct-7"]
    store = Store.open(data_dir=tmp_path / "data")
    try:
        assert ScanResultRepository(store).counts(job["id"]) == {"match": 1, "no_match": 1}
    finally:
        store.dispose()
