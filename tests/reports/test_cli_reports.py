"""The new ``reports`` commands: example, schema, render, validate, submit, submissions, stats."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from cases_support import hashes, record_check
from cybertip_support import PASSWORD, TEST_XSD, USER, running
from safestream.store.banks import BankRepository
from safestream.store.db import Store


def test_example_checks_clean_renders_and_validates(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    r = invoke("reports", "example")
    assert r.exit_code == 0, r.output
    example = json.loads(r.output)
    assert example["persons"][0]["ip_capture_events"][0]["ip_address"].startswith("192.0.2.")
    path = tmp_path / "example.json"
    path.write_text(r.output, encoding="utf-8")
    checked = invoke("reports", "check", str(path))
    assert checked.exit_code == 0 and json.loads(checked.output) == []
    xml = invoke("reports", "render", "--format", "cybertipline", str(path))
    assert xml.exit_code == 0, xml.output
    root = ET.fromstring(xml.output)
    assert root.findtext("report/personOrUserReported/espIdentifier") == "acct-1001"
    assert (
        root.findtext("report/internetDetails/chatImIncident/content") == example["chat"]["excerpt"]
    )
    as_json = invoke("reports", "render", "--format", "json", str(path))
    assert json.loads(as_json.output) == example
    xsd = tmp_path / "ours.xsd"
    xsd.write_text(TEST_XSD, encoding="utf-8")
    xml_path = tmp_path / "report.xml"
    xml_path.write_text(xml.output, encoding="utf-8")
    for target in (xml_path, path):  # the XML, or the JSON rendered first
        ok = invoke("reports", "validate", "--xsd", str(xsd), str(target))
        assert ok.exit_code == 0 and json.loads(ok.output) == {"valid": True, "errors": []}
    swapped = xml.output.replace("<platform>Example Chat</platform>", "").replace(
        "<incidentType>", "<platform>Example Chat</platform><incidentType>"
    )
    xml_path.write_text(swapped, encoding="utf-8")
    bad = invoke("reports", "validate", "--xsd", str(xsd), str(xml_path))
    assert bad.exit_code == 1 and "platform" in json.loads(bad.output)["errors"][0]


def test_schema_is_the_models_json_schema(invoke: Callable[..., Result]) -> None:
    r = invoke("reports", "schema")
    assert r.exit_code == 0
    schema = json.loads(r.output)
    assert schema["title"] == "Report" and set(schema["required"]) == {"reporter", "incident"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read JSON"),
        ('{"incident": {}}', "invalid report"),
        (
            '{"reporter": {"organisation": "x", "contact": {"name": "y"}}, "incident": '
            '{"incident_date_time": "2026-01-01T00:00:00"}}',
            "timezone",
        ),
        (
            '{"reporter": {"organisation": "x", "contact": {"name": "y"}}, "incident": {}, '
            '"additional_info": "' + "é" * 100_001 + '"}',
            "invalid report",
        ),
        ("\udcff", "cannot read"),
    ],
)
def test_bad_report_files_are_clear_errors(
    invoke: Callable[..., Result], tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    for args in (("render",), ("check",), ("validate", "--xsd", str(path))):
        r = invoke("reports", *args, str(path))
        assert r.exit_code == 2, (args, r.output)
        assert "error:" in r.output
    assert message.lower() in invoke("reports", "render", str(path)).output.lower()


def test_validate_needs_exactly_one_xsd_source(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    path = tmp_path / "r.xml"
    path.write_text("<report/>", encoding="utf-8")
    assert "one of them" in invoke("reports", "validate", str(path)).output
    xsd = tmp_path / "x.xsd"
    xsd.write_text(TEST_XSD, encoding="utf-8")
    both = invoke("reports", "validate", "--xsd", str(xsd), "--fetch-xsd", str(path))
    assert both.exit_code == 2


def test_submit_submissions_fetch_xsd_and_stats_from_the_cli(
    invoke: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.open(data_dir=tmp_path / "data")
    try:
        record_check(store, seed=1)
        BankRepository(store).create_bank("internal-known")
    finally:
        store.dispose()
    assert invoke("cases", "sync").exit_code == 0
    assert (
        invoke(
            "cases", "decide", "1", "--status", "in_review", "--reason-code", "assigned"
        ).exit_code
        == 0
    )
    r = invoke(
        "cases",
        "decide",
        "1",
        "--status",
        "confirmed",
        "--reason-code",
        "known_material_confirmed",
        "--add-to-bank",
        "internal-known",
    )
    assert r.exit_code == 0, r.output
    store = Store.open(data_dir=tmp_path / "data")
    try:
        values = {e.value for e in BankRepository(store).iter_entries("internal-known")}
    finally:
        store.dispose()
    assert hashes(1)["sha256"] in values
    built = invoke("reports", "build", "1", "--files-viewed")
    assert built.exit_code == 0, built.output
    rid = str(json.loads(built.output)["id"])
    unconfigured = invoke("reports", "submit", rid)
    assert unconfigured.exit_code == 2 and "SAFESTREAM_CYBERTIP_URL" in unconfigured.output
    with running() as fake:
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_URL", fake.url)
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_USER", USER)
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_PASSWORD", PASSWORD)
        r = invoke("reports", "submit", rid)
        assert r.exit_code == 0, r.output
        out = json.loads(r.output)
        assert out["status"] == "finished" and fake.in_state("finished") == [
            out["remote_report_id"]
        ]
        again = invoke("reports", "submit", rid)
        assert again.exit_code == 2 and "already filed" in again.output
        export = tmp_path / "r.xml"
        assert (
            invoke(
                "reports", "export", rid, "--format", "cybertipline", "--out", str(export)
            ).exit_code
            == 0
        )
        fetched = invoke("reports", "validate", "--fetch-xsd", str(export))
        assert fetched.exit_code == 0, fetched.output
        assert fake.count("/xsd") == 1
    log = json.loads(invoke("reports", "submissions", rid).output)
    assert [e["step"] for e in log["exchanges"]] == ["submit", "finish"]  # no upload: no fileinfo
    assert log["submission"]["remote_report_id"] == out["remote_report_id"]
    stats = json.loads(invoke("reports", "stats").output)
    assert stats["cases"] == 1 and stats["stages"]["detected_to_finished"]["count"] == 1
    assert invoke("reports", "submissions", "99").exit_code == 2


def test_submit_queue_enqueues_one_job_that_a_worker_runs(
    invoke: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safestream.jobs.base import Backoff
    from safestream.jobs.report_submit import ReportSubmitHandler
    from safestream.jobs.worker import Worker, WorkerOptions
    from safestream.store.jobs import JobRepository

    store = Store.open(data_dir=tmp_path / "data")
    try:
        record_check(store, seed=1)
    finally:
        store.dispose()
    assert invoke("cases", "sync").exit_code == 0
    for status, code in (("in_review", "assigned"), ("confirmed", "known_material_confirmed")):
        r = invoke("cases", "decide", "1", "--status", status, "--reason-code", code)
        assert r.exit_code == 0, r.output
    built = invoke("reports", "build", "1", "--files-viewed")
    rid = str(json.loads(built.output)["id"])
    unconfigured = invoke("reports", "submit", "--queue", rid)
    assert unconfigured.exit_code == 2 and "SAFESTREAM_CYBERTIP_URL" in unconfigured.output
    with running() as fake:
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_URL", fake.url)
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_USER", USER)
        monkeypatch.setenv("SAFESTREAM_CYBERTIP_PASSWORD", PASSWORD)
        assert invoke("reports", "submit", "--queue", "99").exit_code == 2  # unknown report
        first = invoke("reports", "submit", "--queue", rid)
        assert first.exit_code == 0, first.output
        queued = json.loads(first.output)
        assert queued["created"] is True and queued["job"]["kind"] == "report_submit"
        again = json.loads(invoke("reports", "submit", "--queue", rid).output)
        assert again["created"] is False and again["job"]["id"] == queued["job"]["id"]
        assert fake.calls == []  # queued, not sent
        store = Store.open(data_dir=tmp_path / "data")
        try:
            handler = ReportSubmitHandler.from_env(store)
            assert handler is not None
            jobs = JobRepository(store)
            options = WorkerOptions(once=True, poll_interval_s=0.01, backoff=Backoff(0.0, 0.0))
            Worker(jobs, [handler], options).run()
            job = jobs.get(queued["job"]["id"])
        finally:
            store.dispose()
        assert job.status == "done", job.last_error
        assert job.result is not None
        assert fake.in_state("finished") == [job.result["remote_report_id"]]
        filed = invoke("reports", "submit", "--queue", rid)
        assert filed.exit_code == 2 and "already filed" in filed.output
