"""CyberTipline submission against a fake hotline on 127.0.0.1: flow, faults, resume."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]

from cases_support import T0, confirmed_report, hashes
from cybertip_support import PASSWORD, TEST_XSD, USER, FakeCybertip, running
from safestream.demo import synthetic_image
from safestream.errors import ConfigError, ConflictError, InputError
from safestream.evidence.store import EvidenceStore
from safestream.reports.cybertipline import export_xml, report_xml
from safestream.reports.service import ReportService
from safestream.reports.submission import (
    PRESETS,
    CybertipAuthError,
    CybertipConfig,
    CybertipRejected,
    CybertipUnavailable,
    FileSource,
    SubmissionService,
    evidence_finder,
    validate_xml,
)
from safestream.reports.timeliness import report_stats
from safestream.store.audit import AuditRepository
from safestream.store.cases import SubmissionRepository
from safestream.store.db import Store

KEY = "k1:" + __import__("base64").b64encode(bytes(range(32))).decode()


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    synthetic_image(seed, (256, 192)).save(buf, "PNG")
    return buf.getvalue()


def built_report(store: Store, *, excerpt: str | None = "hello", files: int = 2) -> ReportService:
    return confirmed_report(store, files, chat_excerpt=excerpt)[0]


class Sleeps(list[float]):
    def __call__(self, s: float) -> None:
        self.append(s)


def service(
    rs: ReportService,
    fake: FakeCybertip,
    *,
    password: str = PASSWORD,
    files: Any = None,
    sleeps: Sleeps | None = None,
    attempts: int = 4,
    cls: type[SubmissionService] = SubmissionService,
) -> SubmissionService:
    config = CybertipConfig(
        base_url=fake.url, user=USER, password=password, timeout_s=10, max_attempts=attempts
    )
    from safestream.reports.submission import CybertipClient

    def factory(log: Any) -> CybertipClient:
        return CybertipClient(
            config, on_exchange=log, sleep=sleeps if sleeps is not None else Sleeps()
        )

    kwargs = {"files": files} if files is not None else {}
    return cls(rs, factory, **kwargs)  # type: ignore[arg-type]


def uploaded(_report_id: int, _account: str | None, _f: Any) -> FileSource:
    """Every file preserved (so each is uploaded and gets its fileDetails)."""
    return FileSource(b"bytes", "image/png")


def report_id(rs: ReportService) -> int:
    (case,) = rs.cases.repo.list()
    return case.id  # one case, one report: the ids coincide in a fresh store


@pytest.fixture
def evidence(store: Store, tmp_path: Path) -> EvidenceStore:
    return EvidenceStore.from_env(
        store,
        {"SAFESTREAM_EVIDENCE_DIR": str(tmp_path / "ev"), "SAFESTREAM_EVIDENCE_KEYS": KEY},
    )


def test_full_flow_uploads_preserved_files_and_files_once(
    store: Store, evidence: EvidenceStore
) -> None:
    rs = built_report(store)
    content = png(1)
    assert hashes(1)["sha256"] == __import__("hashlib").sha256(content).hexdigest()
    preserved = evidence.preserve(
        content,
        actor="le",
        basis="report",
        legal_basis="report",
        account_id="acct-1",
        media_type="image/png",
    )
    rid = report_id(rs)
    with running() as fake:
        svc = service(rs, fake, files=evidence_finder(evidence, actor="le"))
        out = svc.submit(rid, actor="le")
        assert out["status"] == "finished"
        remote = out["remote_report_id"]
        assert fake.in_state("finished") == [remote]
        held = fake.reports[remote]
        assert held.xml == report_xml(rs.get(rid).report)
        # file 1 was preserved: uploaded byte for byte, with its fileDetails; file 2 was
        # not: no fileId, so no fileDetails (NCMEC refuses a blank one); its hashes are in
        # the report's additionalInfo
        assert list(held.files.values()) == [content]
        assert out["files"]["0"]["preserved"] is True
        assert out["files"]["0"]["evidence_id"] == preserved.id
        assert out["files"]["1"]["preserved"] is False
        details = [ET.fromstring(d) for d in held.file_details]
        assert [d.findtext("fileId") for d in details] == [out["files"]["0"]["file_id"]]
        info = ET.fromstring(held.xml).findtext("additionalInfo") or ""
        assert hashes(2)["sha256"] in info and hashes(2)["md5"] in info
        assert [c.path for c in fake.calls] == ["/submit", "/upload", "/fileinfo", "/finish"]
        # never twice: a second submission is refused before any request
        with pytest.raises(ConflictError, match="already filed"):
            svc.submit(rid, actor="le")
        assert len(fake.calls) == 4
    case = rs.cases.get(rs.get(rid).case_id)
    assert case.status == "reported"
    events = AuditRepository(store).list_events(object_id=str(case.id))
    reported = [e for e in events if e.action == "case.reported"]
    assert reported and reported[-1].detail["reference"] == f"cybertipline:{remote}"
    # the evidence read was audited with the report id
    ev_events = AuditRepository(store).list_events(object_id=preserved.id)
    assert any(e.action == "evidence.report_upload" for e in ev_events)


def test_every_request_and_response_is_stored_unchanged(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    with running() as fake:
        fake.faults[2] = "503"  # one retried call is stored too
        sleeps = Sleeps()
        svc = service(
            rs,
            fake,
            sleeps=sleeps,
            files=lambda *_: FileSource(b"synthetic bytes", "image/png", "ev-1"),
        )
        svc.submit(rid, actor="le")
        log = svc.submissions(rid)["exchanges"]
        assert len(log) == len(fake.calls) == 5
        for stored, call in zip(log, fake.calls, strict=True):
            assert stored["url"].endswith(call.path)
            assert stored["response_status"] == call.status
            assert stored["response_body"] == call.response
            assert stored["sent_at"] and stored["received_at"]
            assert "Authorization" not in stored["request_headers"]
            if call.path == "/upload":
                # the file bytes are not copied into the log; the rest is as sent
                assert b"synthetic bytes" in call.body
                assert "synthetic bytes" not in stored["request_body"]
                assert "15 bytes, sha256" in stored["request_body"]
                head = call.body.split(b"synthetic bytes")[0].decode()
                assert stored["request_body"].startswith(head)
            else:
                assert stored["request_body"] == call.body.decode("utf-8")
        assert [s["step"] for s in log] == ["submit", "upload", "upload", "fileinfo", "finish"]
        assert [s["attempt"] for s in log[1:3]] == [1, 2]
        assert len(sleeps) == 1
    assert PASSWORD not in repr(log)


def test_auth_failure_is_not_retried_and_stays_resumable(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    with running() as fake:
        sleeps = Sleeps()
        with pytest.raises(CybertipAuthError, match="credentials"):
            service(rs, fake, password="wrong-password", sleeps=sleeps).submit(rid, actor="le")
        assert len(fake.calls) == 1 and sleeps == []
        state = SubmissionRepository(store).get(rid)
        assert state.status == "pending" and state.remote_report_id is None
        assert "CybertipAuthError" in (state.last_error or "")
        assert rs.cases.get(rs.get(rid).case_id).status == "confirmed"
        out = service(rs, fake).submit(rid, actor="le")
        assert out["status"] == "finished" and fake.in_state("finished") == [
            out["remote_report_id"]
        ]


def test_transient_errors_are_retried_with_capped_backoff(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    with running() as fake:
        fake.path_faults["/submit"] = ["503", "429"]
        fake.path_faults["/upload"] = ["drop"]
        sleeps = Sleeps()
        out = service(
            rs, fake, sleeps=sleeps, files=lambda *_: FileSource(b"x" * 10, "image/png")
        ).submit(rid, actor="le")
        assert out["status"] == "finished"
        assert fake.count("/submit") == 3 and len(fake.in_state("finished")) == 1
        assert fake.count("/upload") == 2
        # waits: first attempt 0.5-1 s, second 1-2 s (exponential, jittered); then 0.5-1
        assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0 and 0.5 <= sleeps[2] <= 1.0
    cfg = CybertipConfig(base_url="http://127.0.0.1:1", user="u", password="p", backoff_cap_s=5)
    assert all(cfg.delay(n) <= 5 for n in range(1, 30))


def test_retries_give_up_after_the_cap(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    with running() as fake:
        fake.path_faults["/submit"] = ["503"] * 10
        sleeps = Sleeps()
        with pytest.raises(CybertipUnavailable, match="3 times"):
            service(rs, fake, sleeps=sleeps, attempts=3).submit(rid, actor="le")
        assert fake.count("/submit") == 3 and len(sleeps) == 2
        assert fake.count("/retract") == 0  # nothing to retract: no report id yet
        assert SubmissionRepository(store).get(rid).status == "pending"


def test_failure_after_submit_retracts_and_the_next_run_starts_afresh(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    with running() as fake:
        fake.path_faults["/fileinfo"] = ["invalid"]
        with pytest.raises(CybertipRejected, match="4100"):
            service(rs, fake, files=uploaded).submit(rid, actor="le")
        (first,) = fake.in_state("retracted")
        state = SubmissionRepository(store).get(rid)
        assert state.status == "retracted" and state.retracted == [first]
        assert state.remote_report_id is None
        assert rs.cases.get(rs.get(rid).case_id).status == "confirmed"
        out = service(rs, fake, files=uploaded).submit(rid, actor="le")
        assert out["retracted"] == [first] and out["remote_report_id"] != first
        assert fake.in_state("finished") == [out["remote_report_id"]]


def test_failed_retract_keeps_the_remote_report_to_resume(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    with running() as fake:
        fake.path_faults["/fileinfo"] = ["invalid"]
        fake.path_faults["/retract"] = ["invalid"]
        with pytest.raises(CybertipRejected):
            service(rs, fake, files=uploaded).submit(rid, actor="le")
        state = SubmissionRepository(store).get(rid)
        assert state.status == "in_progress" and state.remote_report_id is not None
        assert "retract failed" in (state.last_error or "")
        out = service(rs, fake, files=uploaded).submit(rid, actor="le")
        assert out["remote_report_id"] == state.remote_report_id
        assert fake.count("/submit") == 1 and len(fake.in_state("finished")) == 1


class CrashAfter(SubmissionService):
    crash_at = "upload"

    def _after_step(self, step: str, state: Any) -> None:
        if step == self.crash_at:
            raise RuntimeError(f"simulated crash after {step}")


@pytest.mark.parametrize("step", ["submit", "upload", "fileinfo", "finish"])
def test_crash_mid_flow_then_resume_files_once(store: Store, step: str) -> None:
    rs = built_report(store, files=2)
    rid = report_id(rs)
    files = lambda *_: FileSource(b"bytes", "image/png")  # noqa: E731
    with running() as fake:
        crashing = type("C", (CrashAfter,), {"crash_at": step})
        with pytest.raises(RuntimeError, match="simulated crash"):
            service(rs, fake, files=files, cls=crashing).submit(rid, actor="le")
        assert fake.count("/retract") == 0  # a crash is not a refusal: no retract
        before = len(fake.calls)
        out = service(rs, fake, files=files).submit(rid, actor="le")
        assert out["status"] == "finished"
        assert fake.count("/submit") == 1 and fake.count("/finish") == 1
        assert len(fake.in_state("finished")) == 1
        (held,) = fake.reports.values()
        assert len(held.files) == 2 and len(held.file_details) == 2
        if step == "finish":
            assert len(fake.calls) == before  # only the case move was left
    assert rs.cases.get(rs.get(rid).case_id).status == "reported"


def test_finish_answer_lost_then_retried_counts_as_finished(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    with running() as fake:
        fake.path_faults["/finish"] = ["drop_after"]
        out = service(rs, fake).submit(rid, actor="le")
        assert out["status"] == "finished"
        assert fake.count("/finish") == 2 and len(fake.in_state("finished")) == 1
        # NCMEC's "already finished" (5102) on the retry counts as filed
        assert fake.calls[-1].response and "5102" in fake.calls[-1].response


def test_special_characters_and_long_unicode_arrive_escaped(store: Store) -> None:
    excerpt = (
        "<script>alert(\"x\")</script> & ]]> 'quoted' <!-- c --> " + "Grüße 😀 עברית 中文 " * 4000
    )
    rs = built_report(store, excerpt=excerpt, files=1)
    rid = report_id(rs)
    with running() as fake:
        service(rs, fake).submit(rid, actor="le")
        (held,) = fake.reports.values()
    assert "<script>" not in held.xml and "&lt;script&gt;" in held.xml
    root = ET.fromstring(held.xml)
    assert root.findtext("internetDetails/chatImIncident/content") == excerpt
    assert root.findtext("reporter/reportingPerson/email") == "trust@example.com"


def test_quality_gate_and_case_state_are_checked_before_any_request(store: Store) -> None:
    rs = built_report(store, excerpt=None, files=1)  # chat without conversation: blocking
    rid = report_id(rs)
    with running() as fake:
        svc = service(rs, fake)
        with pytest.raises(ConflictError, match="chat_without_conversation"):
            svc.submit(rid, actor="le")
        with pytest.raises(ConflictError):
            svc.submit(rid, actor="le", override_reason="   ")
        assert fake.calls == []
        out = svc.submit(rid, actor="le", override_reason="conversation held by the partner")
        assert out["status"] == "finished"
    case = rs.cases.get(rs.get(rid).case_id)
    assert case.decision_note == "conversation held by the partner"
    ev = AuditRepository(store).list_events(object_id=str(case.id), action="case.reported")[-1]
    assert ev.detail["overridden"] == ["chat_without_conversation"]


def test_a_report_marked_submitted_by_hand_is_not_filed_again(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    rs.mark_submitted(rid, actor="le", reference="TIP-by-hand")
    with running() as fake:
        with pytest.raises(ConflictError, match="'reported'"):
            service(rs, fake).submit(rid, actor="le")
        assert fake.calls == []


def test_a_running_submission_holds_the_report(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    repo = SubmissionRepository(store)
    repo.get_or_create(rid)
    repo.claim(rid, "other-worker", until=T0 + timedelta(days=36500))
    with running() as fake:
        with pytest.raises(ConflictError, match="other-worker"):
            service(rs, fake).submit(rid, actor="le")
        assert fake.calls == []
        repo.release(rid)
        assert service(rs, fake).submit(rid, actor="le")["status"] == "finished"


def test_unknown_report_and_bad_answers(store: Store) -> None:
    rs = built_report(store, files=1)
    with running() as fake:
        with pytest.raises(InputError, match="no report"):
            service(rs, fake).submit(999, actor="le")
        assert fake.calls == []
    from safestream.reports.submission import parse_response

    with pytest.raises(CybertipRejected, match="cannot read"):
        parse_response("<reportResponse><responseCode>0")
    with pytest.raises(CybertipRejected, match="numeric"):
        parse_response("<reportResponse><responseCode>ok</responseCode></reportResponse>")


def test_config_from_env_presets_and_errors() -> None:
    env = {"SAFESTREAM_CYBERTIP_USER": "u", "SAFESTREAM_CYBERTIP_PASSWORD": "p"}
    assert CybertipConfig.from_env(env | {"SAFESTREAM_CYBERTIP_URL": "test"}).base_url == (
        "https://exttest.cybertip.org/ispws"
    )
    prod = CybertipConfig.from_env(env | {"SAFESTREAM_CYBERTIP_URL": "production"})
    assert prod.base_url == PRESETS["production"] == "https://report.cybertip.org/ispws"
    secret = CybertipConfig.from_env(
        {"SAFESTREAM_CYBERTIP_URL": "test", "SAFESTREAM_CYBERTIP_USER": "u"}
        | {"SAFESTREAM_CYBERTIP_PASSWORD": "very-secret-value"}
    )
    assert "very-secret-value" not in repr(secret)
    with pytest.raises(ConfigError, match="SAFESTREAM_CYBERTIP_URL"):
        CybertipConfig.from_env(env)
    with pytest.raises(ConfigError, match="SAFESTREAM_CYBERTIP_USER"):
        CybertipConfig.from_env({"SAFESTREAM_CYBERTIP_URL": "test"})
    with pytest.raises(ConfigError, match="not in the URL"):
        CybertipConfig.from_env(env | {"SAFESTREAM_CYBERTIP_URL": "https://u:p@example.org/x"})
    with pytest.raises(ConfigError, match="http"):
        CybertipConfig.from_env(env | {"SAFESTREAM_CYBERTIP_URL": "ftp://example.org"})
    with pytest.raises(ConfigError, match="numbers"):
        CybertipConfig.from_env(
            env | {"SAFESTREAM_CYBERTIP_URL": "test", "SAFESTREAM_CYBERTIP_MAX_ATTEMPTS": "x"}
        )


def test_xsd_validation_fixes_the_element_order(store: Store) -> None:
    rs = built_report(store, files=2)
    rid = report_id(rs)
    document = export_xml(rs.get(rid).report, report_id="1")
    assert validate_xml(document, TEST_XSD) == []
    # a reordering bug (reporter before incidentSummary) fails
    tree = etree.fromstring(document.encode())
    report = tree.find("report")
    reporter = report.find("reporter")
    report.remove(reporter)
    report.insert(0, reporter)
    errors = validate_xml(etree.tostring(tree), TEST_XSD)
    assert errors and "reporter" in errors[0]
    # hashes before the file flags fail too
    tree2 = etree.fromstring(document.encode())
    fd = tree2.find("fileDetails")
    h = fd.find("originalFileHash")
    fd.remove(h)
    fd.insert(2, h)
    assert validate_xml(etree.tostring(tree2), TEST_XSD)
    with pytest.raises(InputError, match="well-formed"):
        validate_xml("<report>", TEST_XSD)
    with pytest.raises(InputError, match="XSD"):
        validate_xml(document, "<xs:schema")


def test_xsd_is_fetched_from_the_api_and_the_call_is_stored(store: Store) -> None:
    rs = built_report(store, files=1)
    with running() as fake:
        xsd = service(rs, fake).fetch_xsd()
        assert fake.count("/xsd") == 1
    assert validate_xml(export_xml(rs.get(report_id(rs)).report), xsd) == []


def test_timeliness_from_a_submitted_report(store: Store) -> None:
    rs = built_report(store, files=1)
    rid = report_id(rs)
    with running() as fake:
        service(rs, fake).submit(rid, actor="le")
    stats = report_stats(store)
    (line,) = stats["timelines"]
    state = SubmissionRepository(store).get(rid)
    assert line["submitted_at"] == state.submitted_at.isoformat()  # type: ignore[union-attr]
    assert line["finished_at"] == state.finished_at.isoformat()  # type: ignore[union-attr]
    stages = stats["stages"]
    assert all(stages[s]["count"] == 1 for s in stages)
    # detected at T0 + 1 min (synthetic), reviewed now: far more than 24 hours
    assert stages["detected_to_reviewed"]["within_24h_share"] == 0.0
    assert stages["submitted_to_finished"]["within_24h_share"] == 1.0


@pytest.mark.parametrize(("path", "fault"), [("/upload", "503"), ("/fileinfo", "drop")])
def test_an_outage_after_submit_keeps_the_remote_report_and_resumes_it(
    store: Store, path: str, fault: str
) -> None:
    """An outage is not a refusal: no /retract, no second remote report, one /finish."""
    rs = built_report(store, files=1)
    rid = report_id(rs)
    files = lambda *_: FileSource(b"bytes", "image/png")  # noqa: E731
    with running() as fake:
        fake.path_faults[path] = [fault] * 4  # outlasts two runs of two attempts each
        for _ in range(2):
            with pytest.raises(CybertipUnavailable):
                service(rs, fake, files=files, attempts=2).submit(rid, actor="le")
            state = SubmissionRepository(store).get(rid)
            assert state.status == "in_progress" and state.remote_report_id is not None
            assert state.retracted == []
            assert f"hotline report {state.remote_report_id} kept" in (state.last_error or "")
        assert fake.count("/retract") == 0 and fake.count("/submit") == 1
        assert fake.count(path) == 4
        out = service(rs, fake, files=files).submit(rid, actor="le")
        assert out["status"] == "finished" and out["remote_report_id"] == state.remote_report_id
        assert fake.count("/submit") == 1 and fake.count("/finish") == 1
        assert fake.in_state("finished") == [state.remote_report_id]
        assert fake.in_state("retracted") == []
    assert rs.cases.get(rs.get(rid).case_id).status == "reported"


def test_credentials_refused_mid_flow_keep_the_remote_report(store: Store) -> None:
    """Revoked credentials say nothing about the report: it is resumed, not retracted."""
    rs = built_report(store, files=1)
    rid = report_id(rs)
    with running() as fake:
        fake.path_faults["/fileinfo"] = ["401"]
        with pytest.raises(CybertipAuthError):
            service(rs, fake, files=uploaded).submit(rid, actor="le")
        state = SubmissionRepository(store).get(rid)
        assert state.status == "in_progress" and state.remote_report_id is not None
        assert fake.count("/retract") == 0
        out = service(rs, fake, files=uploaded).submit(rid, actor="le")
        assert out["remote_report_id"] == state.remote_report_id
        assert fake.count("/submit") == 1 and fake.in_state("finished") == [out["remote_report_id"]]
