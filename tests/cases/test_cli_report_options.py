"""``reports build`` takes what the API's build body takes: incident type, public
availability and additional information (SQLite data dir, synthetic images)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from cases_support import record_check
from safestream.store.db import Store


def _confirmed_case(invoke: Callable[..., Result], tmp_path: Path) -> str:
    store = Store.open(data_dir=tmp_path / "data")
    try:
        record_check(store, seed=3)
    finally:
        store.dispose()
    assert invoke("cases", "sync").exit_code == 0
    (case,) = json.loads(invoke("cases", "list").output)
    cid = str(case["id"])
    for status, code in (("in_review", "assigned"), ("confirmed", "known_material_confirmed")):
        assert (
            invoke("cases", "decide", cid, "--status", status, "--reason-code", code).exit_code == 0
        )
    return cid


def test_build_takes_incident_type_publicity_and_additional_info(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    cid = _confirmed_case(invoke, tmp_path)
    r = invoke(
        "reports",
        "build",
        cid,
        "--incident-type",
        "online_enticement",
        "--not-publicly-available",
        "--additional-info",
        "Found by a synthetic test <&>",
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)["report"]
    assert report["incident"]["incident_type"] == "Online Enticement of Children for Sexual Acts"
    assert [f["publicly_available"] for f in report["files"]] == [False]
    assert report["additional_info"] == "Found by a synthetic test <&>"


def test_build_defaults_leave_publicity_unrecorded(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    cid = _confirmed_case(invoke, tmp_path)
    r = invoke("reports", "build", cid)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)["report"]
    assert report["incident"]["incident_type"].startswith("Child Pornography")
    assert [f["publicly_available"] for f in report["files"]] == [None]
    assert report["additional_info"] is None


def test_bad_build_options_are_clear_errors(invoke: Callable[..., Result], tmp_path: Path) -> None:
    cid = _confirmed_case(invoke, tmp_path)
    r = invoke("reports", "build", cid, "--incident-type", "other")
    assert r.exit_code == 2 and "--incident-type" in r.output
    r = invoke("reports", "build", cid, "--additional-info", "x" * 100_001)
    assert r.exit_code == 2 and "additional_info" in r.output
    assert "Traceback" not in r.output
    r = invoke("reports", "build", cid, "--platform", "p" * 201)
    assert r.exit_code == 2 and "platform" in r.output
    # Nothing was stored by the refused builds.
    r = invoke("reports", "export", "1")
    assert r.exit_code == 2 and "1" in r.output
