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
