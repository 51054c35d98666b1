"""The safestream command: hash, bank, match, scan, demo and their exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from safestream.cli import cli
from safestream.demo import synthetic_image


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    data_dir = tmp_path / "data"

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)

    return invoke


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    synthetic_image(1).save(folder / "a.png")
    synthetic_image(1).convert("RGB").resize((320, 240)).save(folder / "sub" / "a-small.jpg")
    synthetic_image(2).save(folder / "b.png")
    (folder / "sub" / "broken.png").write_bytes((folder / "a.png").read_bytes()[:500])
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def test_hash_outputs_json_lines_and_errors(run, images: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("hash", str(images / "a.png"), str(images / "empty.jpg"))
    assert result.exit_code == 2
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert len(first["pdq"]) == 64 and first["pdq_quality"] >= 50 and len(first["md5"]) == 32
    assert second["error"]["kind"] == "empty_file"
    ok = run("hash", "--mode", "fast", "--dihedral", str(images / "a.png"))
    assert ok.exit_code == 0
    assert len(json.loads(ok.output)["pdq_dihedral"]) == 8


def test_bank_lifecycle_and_match(run, images: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("bank", "create", "known", "--source", "test").exit_code == 0
    assert run("bank", "create", "known").exit_code == 2  # duplicate
    pdq = json.loads(run("hash", str(images / "a.png")).output)["pdq"]
    added = run("bank", "add", "known", pdq, "--external-id", "X")
    assert json.loads(added.output)["duplicates"] == 0
    listing = json.loads(run("bank", "list", "--json").output)
    assert [(b["name"], b["entry_count"]) for b in listing] == [("known", 1)]
    matched = run("match", pdq)
    assert matched.exit_code == 1
    assert json.loads(matched.output)["matches"][0]["external_id"] == "X"
    other = json.loads(run("hash", str(images / "b.png")).output)["pdq"]
    assert run("match", other).exit_code == 0
    bad = run("match", "xyz")
    assert bad.exit_code == 2 and "cannot tell the signal type" in bad.output
    # A file's path where a hash goes: the error says how to get the hash; nothing added.
    a_file = run("bank", "add", "known", pdq, str(images / "b.png"))
    assert a_file.exit_code == 2
    assert "is a file, not a pdq hash" in a_file.output
    assert f"safestream hash {images / 'b.png'}" in a_file.output
    not_hex = run("bank", "add", "known", "xyz")
    assert not_hex.exit_code == 2 and "64 hex characters" in not_hex.output
    listing = json.loads(run("bank", "list", "--json").output)
    assert [(b["name"], b["entry_count"]) for b in listing] == [("known", 1)]

    out = tmp_path / "export.csv"
    assert run("bank", "export", "known", "--format", "csv", "-o", str(out)).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert rows == [
        {"signal_type": "pdq", "value": pdq, "external_id": "X", "source": "", "labels": ""}
    ]
    assert run("bank", "create", "copy").exit_code == 0
    imported = run("bank", "import", "copy", str(out))
    assert json.loads(imported.output)["entries_added"] == 1
    assert run("bank", "update", "copy", "--disable").exit_code == 0
    assert run("bank", "delete", "copy").exit_code == 2  # needs --yes
    assert run("bank", "delete", "copy", "--yes").exit_code == 0
    removed = run("bank", "remove", "known", pdq)
    assert json.loads(removed.output) == {"removed": 1}
    assert run("match", pdq).exit_code == 0


def test_bank_import_bad_line_exit_2(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("bank", "create", "b")
    path = tmp_path / "list.txt"
    path.write_text("pdq " + "0" * 64 + "\npdq 12\n")
    result = run("bank", "import", "b", str(path))
    assert result.exit_code == 2
    assert f"{path}:2:" in result.output
    assert json.loads(run("bank", "show", "b").output)["entry_count"] == 0


def test_scan_jsonl_and_exit_codes(run, images: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("bank", "create", "known")
    pdq = json.loads(run("hash", str(images / "a.png")).output)["pdq"]
    run("bank", "add", "known", pdq)
    result = run("scan", "--workers", "1", str(images))
    assert result.exit_code == 2  # broken and empty files
    records = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.strip().splitlines())}
    assert set(records) == {"a.png", "a-small.jpg", "b.png", "broken.png", "empty.jpg"}
    assert records["a.png"]["outcome"] == "match"
    assert records["a-small.jpg"]["outcome"] == "match"
    assert records["b.png"]["outcome"] == "no_match"
    assert records["broken.png"]["error"]["kind"] == "corrupt_image"
    assert records["empty.jpg"]["error"]["kind"] == "empty_file"

    (images / "sub" / "broken.png").unlink()
    (images / "empty.jpg").unlink()
    out = tmp_path / "scan.csv"
    result = run("scan", "--format", "csv", "-o", str(out), str(images))
    assert result.exit_code == 1
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert rows["a.png"]["bank"] == "known" and rows["b.png"]["outcome"] == "no_match"
    (images / "a.png").unlink()
    (images / "sub" / "a-small.jpg").unlink()
    assert run("scan", str(images)).exit_code == 0
    assert run("scan", str(tmp_path / "missing")).exit_code == 2


@pytest.mark.slow
def test_scan_in_worker_processes(tmp_path: Path) -> None:
    """The real command in a subprocess, hashing in a spawned process pool."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for seed in range(10):
        synthetic_image(seed, (256, 192)).save(folder / f"{seed}.png")
    env = {**os.environ, "SAFESTREAM_DATA_DIR": str(tmp_path / "data")}
    env.pop("SAFESTREAM_DATABASE_URL", None)
    base = [sys.executable, "-m", "safestream.cli"]
    h = subprocess.run(
        [*base, "hash", str(folder / "3.png")], env=env, capture_output=True, text=True, check=True
    )
    pdq = json.loads(h.stdout)["pdq"]
    subprocess.run([*base, "bank", "create", "k"], env=env, check=True, capture_output=True)
    subprocess.run([*base, "bank", "add", "k", pdq], env=env, check=True, capture_output=True)
    proc = subprocess.run(
        [*base, "scan", "--workers", "2", "--format", "csv", str(folder)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 10
    assert {Path(r["path"]).name for r in rows if r["outcome"] == "match"} == {"3.png"}
    assert "scan summary" in proc.stderr


@pytest.mark.slow
def test_demo_runs_and_finds_copies(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["demo", "--dir", str(tmp_path / "demo"), "--workers", "1"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "false matches on unrelated images: 0/10" in result.output
    assert "corrupt_image: 1, not_an_image: 1" in result.output
    for transform in ("identical", "resize-50%", "jpeg-q50", "blur", "rotate-90", "flip"):
        assert re.search(rf"│ {re.escape(transform)}\s*│ 8/8", result.output), transform
    assert re.search(r"img-008-watermark.png\s*│ suppressed", result.output)


def test_serve_refuses_bad_configuration(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SAFESTREAM_WEBHOOK_URL", "ftp://example.com/hook")
    monkeypatch.setenv("SAFESTREAM_WEBHOOK_SECRET", "s" * 32)
    bad_url = run("serve")
    assert bad_url.exit_code == 2 and "http" in bad_url.output
    monkeypatch.delenv("SAFESTREAM_WEBHOOK_URL")
    monkeypatch.delenv("SAFESTREAM_WEBHOOK_SECRET")
    policy = tmp_path / "p.toml"
    policy.write_text("[[rule]]\nname='a'\nverdict='block'\nactions=['webhook']\n")
    no_hook = run("serve", "--policy", str(policy))
    assert no_hook.exit_code == 2 and "SAFESTREAM_WEBHOOK_URL" in no_hook.output
    policy.write_text("[[rule]]\nname='a'\nverdict='ban'\n")
    bad_rule = run("serve", "--policy", str(policy))
    assert bad_rule.exit_code == 2 and "verdict must be one of" in bad_rule.output
    monkeypatch.setenv("SAFESTREAM_MAX_UPLOAD_BYTES", "lots")
    bad_env = run("serve")
    assert bad_env.exit_code == 2 and "SAFESTREAM_MAX_UPLOAD_BYTES" in bad_env.output
