"""The ``requests``, ``evidence`` and ``audit`` commands end to end (SQLite data dir)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from evidence_support import KEY_A, KEY_B, png
from safestream.cli import cli
from safestream.cli_evidence import COMMANDS
from safestream.requests.package import verify_package


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    group = click.Group("safestream-test", params=cli.params, callback=cli.callback)
    for command in COMMANDS:
        group.add_command(command)
    monkeypatch.setenv("SAFESTREAM_EVIDENCE_KEYS", f"k1:{KEY_A}")
    monkeypatch.setenv("SAFESTREAM_EVIDENCE_DIR", str(tmp_path / "evidence"))
    monkeypatch.delenv("SAFESTREAM_DATABASE_URL", raising=False)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(group, ["--data-dir", str(tmp_path / "data"), *args])

    return run


def test_cli_round_trip(
    invoke: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "synthetic.png"
    image.write_bytes(png(11))
    r = invoke(
        "evidence",
        "preserve",
        str(image),
        "--basis",
        "report",
        "--legal-basis",
        "report 7",
        "--account",
        "acct-9",
        "--media-type",
        "image/png",
    )
    assert r.exit_code == 0, r.output
    eid = json.loads(r.output)["id"]
    out = tmp_path / "blurred.png"
    r = invoke("evidence", "get", eid, "--reason", "check", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_bytes() != image.read_bytes()
    r = invoke("evidence", "get", eid, "--reason", "check", "--out", str(out), "--original")
    assert out.read_bytes() == image.read_bytes()
    r = invoke(
        "requests",
        "add",
        "--type",
        "warrant",
        "--agency",
        "Example Police",
        "--officer-name",
        "Det. B",
        "--officer-email",
        "b@police.example",
        "--legal-basis",
        "warrant 12",
        "--jurisdiction",
        "eu",
        "--identifier",
        "acct-9",
        "--category",
        "content",
        "--received-at",
        "2026-03-01T09:00:00Z",
    )
    assert r.exit_code == 0, r.output
    req = json.loads(r.output)
    assert req["deadline_at"] == "2026-03-11T09:00:00+00:00"
    bad = invoke("requests", "status", str(req["id"]), "responded")
    assert bad.exit_code == 2 and "cannot move" in bad.output
    assert invoke("requests", "status", str(req["id"]), "verified").exit_code == 0
    missing = invoke("requests", "add", "--type", "warrant")
    assert missing.exit_code == 2 and "Missing option" in missing.output
    pkg = tmp_path / "pkg.zip"
    r = invoke(
        "requests",
        "export",
        str(req["id"]),
        "--reason",
        "warrant 12",
        "--out",
        str(pkg),
        "--signing-key",
        str(tmp_path / "sign.pem"),
    )
    assert r.exit_code == 0, r.output
    assert f"evidence/{eid}.bin" in verify_package(pkg.read_bytes())["files"]
    assert json.loads(invoke("requests", "sla").output)["open"] == 1
    # Rotation to a new key, then the old key can be dropped.
    monkeypatch.setenv("SAFESTREAM_EVIDENCE_KEYS", f"k2:{KEY_B},k1:{KEY_A}")
    assert json.loads(invoke("evidence", "rotate-key").output) == {"reencrypted": 1}
    monkeypatch.setenv("SAFESTREAM_EVIDENCE_KEYS", f"k2:{KEY_B}")
    assert invoke("evidence", "verify", eid).exit_code == 0
    r = invoke("audit", "verify")
    assert r.exit_code == 0 and json.loads(r.output)["ok"]
    events = json.loads(invoke("audit", "list", "--limit", "1000").output)
    assert {e["action"] for e in events} >= {
        "evidence.preserve",
        "evidence.view",
        "evidence.view_original",
        "request.received",
        "request.status",
        "request.export",
        "evidence.rekey",
    }
    # Tamper with an event: verify exits 1 and names it.
    from safestream.store.db import Store
    from safestream.store.models import AuditEventRow

    store = Store.open(data_dir=tmp_path / "data")
    with store.session() as s:
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == 2).values(actor="someone"))
    store.dispose()
    r = invoke("audit", "verify")
    assert r.exit_code == 1 and "event 2 was edited" in r.output


def test_cli_missing_key_is_clear(
    invoke: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAFESTREAM_EVIDENCE_KEYS")
    f = tmp_path / "x.bin"
    f.write_bytes(b"plain bytes")
    r = invoke("evidence", "preserve", str(f), "--basis", "other", "--legal-basis", "x")
    assert r.exit_code == 2 and "no evidence key configured" in r.output
    assert invoke("evidence", "purge").exit_code == 0


def test_cli_check_storage_and_periodic_enqueue(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    image = tmp_path / "synthetic.png"
    image.write_bytes(png(12))
    r = invoke("evidence", "preserve", str(image), "--basis", "report", "--legal-basis", "r 1")
    assert r.exit_code == 0, r.output
    eid = json.loads(r.output)["id"]
    r = invoke("evidence", "check-storage")
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert body["ok"] and body["rows"] == 1 and body["missing"] == []
    assert body["backend"] == str(tmp_path / "evidence")
    stray = tmp_path / "evidence" / "00000000-0000-0000-0000-000000000000.k1.ssev"
    stray.write_bytes(b"left by a crash")
    [stored] = [p for p in (tmp_path / "evidence").iterdir() if p.name.startswith(eid)]
    stored.unlink()
    r = invoke("evidence", "check-storage")
    assert r.exit_code == 1 and "1 evidence objects are missing" in r.output
    assert json.loads(r.stdout)["orphans"] == [stray.name]
    assert json.loads(r.stdout)["missing"] == [eid]
    r = invoke("evidence", "check-storage", "--sweep-orphans-older-than-s", "10")
    assert r.exit_code == 2 and "10" in r.output  # at least 60 s: protects in-flight writes
    for group, kind in (("requests", "requests_escalate"), ("evidence", "evidence_purge")):
        verb = "escalate" if group == "requests" else "purge"
        r = invoke(group, verb, "--enqueue")
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["kind"] == kind and json.loads(r.output)["status"] == "queued"
