"""``safestream device keygen | publish | check`` against a local filter."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from device_support import UNRELATED_SEEDS, Known, jpeg
from safestream.banks.formats import HashRecord
from safestream.cli import cli
from safestream.cli_device import COMMANDS
from safestream.demo import synthetic_image
from safestream.store.banks import BankRepository
from safestream.store.db import Store


@pytest.fixture
def invoke(tmp_path: Path) -> Callable[..., Result]:
    # The lead registers COMMANDS in cli._register_plugins(); add them here too.
    for command in COMMANDS:
        if command.name not in cli.commands:
            cli.add_command(command)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(
            cli, ["--data-dir", str(tmp_path / "data"), *args], catch_exceptions=False
        )

    return run


def test_keygen_publish_check(
    invoke: Callable[..., Result], tmp_path: Path, known: list[Known]
) -> None:
    run = invoke
    store = Store.open(data_dir=tmp_path / "data")
    repo = BankRepository(store)
    repo.create_bank("known")
    records = [HashRecord("pdq", k.pdq) for k in known] + [HashRecord("md5", k.md5) for k in known]
    repo.add_entries("known", records)
    repo.create_bank("allowed", is_allow_list=True)
    store.dispose()

    r = run("device", "keygen")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    device_dir = tmp_path / "data" / "device"
    assert stat.S_IMODE(os.stat(device_dir / "oprf.key").st_mode) == 0o600
    assert json.loads(run("device", "keygen").output) == info

    r = run("device", "publish", "--bank", "known")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["version"] == 1
    r = run("device", "publish", "--bank", "allowed")
    assert r.exit_code == 2 and "allow list" in r.output

    img = tmp_path / "known.jpg"
    img.write_bytes(known[0].data)
    other = tmp_path / "other.jpg"
    other.write_bytes(jpeg(synthetic_image(UNRELATED_SEEDS[3])))
    r = run("device", "check", str(img), str(other))
    assert r.exit_code == 1, r.output
    lines = [json.loads(line) for line in r.output.splitlines()]
    assert [line["action"] for line in lines] == ["block", "allow"]
    assert known[0].pdq not in r.output and known[0].md5 not in r.output

    r = run("device", "check", str(other))
    assert r.exit_code == 0
    r = run("device", "check", "--server", "http://127.0.0.1:9", str(other))
    assert r.exit_code == 2 and "--api-key" in r.output
