"""The ``cases`` and ``reports`` commands end to end (SQLite data dir)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from cases_support import record_check
from safestream.store.db import Store


def test_cli_review_and_report(invoke: Callable[..., Result], tmp_path: Path) -> None:
    store = Store.open(data_dir=tmp_path / "data")
    try:
        record_check(store, seed=1, surface="chat")
    finally:
        store.dispose()
    r = invoke("cases", "sync")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"added": 1}
    (case,) = json.loads(invoke("cases", "list").output)
    cid = str(case["id"])
    r = invoke("cases", "decide", cid, "--status", "confirmed", "--reason-code", "x")
    assert r.exit_code == 2 and "error:" in r.output
    for status, code in (("in_review", "assigned"), ("confirmed", "known_material_confirmed")):
        r = invoke("cases", "decide", cid, "--status", status, "--reason-code", code)
        assert r.exit_code == 0, r.output
    assert json.loads(invoke("cases", "show", cid).output)["status"] == "confirmed"
    chat = tmp_path / "chat.txt"
    chat.write_text("<b>synthetic</b> & test conversation", encoding="utf-8")
    r = invoke("reports", "build", cid, "--chat-excerpt", str(chat), "--files-viewed")
    assert r.exit_code == 0, r.output
    built = json.loads(r.output)
    assert built["blocking"] == 0
    out = tmp_path / "report.xml"
    r = invoke("reports", "export", str(built["id"]), "--format", "cybertipline", "--out", str(out))
    assert r.exit_code == 0, r.output
    root = ET.parse(out).getroot()
    assert root.findtext("report/internetDetails/chatImIncident/content") == chat.read_text()
    r = invoke("reports", "export", str(built["id"]))
    report_json = tmp_path / "report.json"
    report_json.write_text(r.output, encoding="utf-8")
    assert invoke("reports", "check", str(report_json)).exit_code == 0
    doc = json.loads(r.output)
    doc["persons"][0]["ip_capture_events"][0]["date_time"] = None
    report_json.write_text(json.dumps(doc), encoding="utf-8")
    r = invoke("reports", "check", str(report_json))
    assert r.exit_code == 1 and "ip_without_time" in r.output
    report_json.write_text("{not json", encoding="utf-8")
    assert invoke("reports", "check", str(report_json)).exit_code == 2
    assert invoke("cases", "show", "424242").exit_code == 2
