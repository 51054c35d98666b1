"""Submission of a report to NCMEC's CyberTipline Reporting API (as modelled).

The flow, as NCMEC documents it for its web-service API (base URL
``https://report.cybertip.org/ispws``, test ``https://exttest.cybertip.org/ispws``,
HTTP basic auth, XML bodies):

1. ``POST /submit`` the ``<report>`` XML; the ``<reportResponse>`` carries the
   hotline's ``reportId``;
2. per file, ``POST /upload`` (multipart: ``id`` = report id, ``file``); the
   response carries a ``fileId``;
3. per file, ``POST /fileinfo`` the ``<fileDetails>`` XML for that file id;
4. ``POST /finish`` (``id`` = report id): only now is the report filed.

``POST /retract`` withdraws an unfinished report; ``GET /status`` checks the
credentials; ``GET /xsd`` serves the schema. Every response is a
``reportResponse``-style document with ``responseCode`` (0 is success) and
``responseDescription``.

Idempotency: the remote report id and each finished step are persisted as soon
as they happen, so a crash resumes from the last finished step; a finished
report refuses to be submitted again. A report is *filed* only by ``/finish``,
and ``/finish`` is only ever sent for the one persisted remote id, so no
report is filed twice. (A connection lost after a ``/submit`` was sent but
before its answer may leave an unfinished report at the hotline, which is
never filed; NCMEC's API has no idempotency key to prevent that.) Only a
refusal of the report's content retracts the remote report; an outage keeps
it, and the next run resumes it.

Element names, response codes and endpoints are modelled on NCMEC's public
documentation and have not been checked against the live service: run against
the test endpoint and validate with the XSD it serves first.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import http.client
import logging
import mimetypes
import os
import random
import ssl
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from safestream.errors import ConfigError, ConflictError, InputError, SafestreamError
from safestream.reports.cybertipline import file_details_element, report_xml
from safestream.reports.model import Report, ReportFile
from safestream.reports.quality import blocking
from safestream.reports.service import ReportService
from safestream.store.cases import SubmissionRepository, SubmissionState
from safestream.store.models import utcnow

log = logging.getLogger(__name__)

ENV_URL = "SAFESTREAM_CYBERTIP_URL"
ENV_USER = "SAFESTREAM_CYBERTIP_USER"
ENV_PASSWORD = "SAFESTREAM_CYBERTIP_PASSWORD"
ENV_TIMEOUT = "SAFESTREAM_CYBERTIP_TIMEOUT_S"
ENV_MAX_ATTEMPTS = "SAFESTREAM_CYBERTIP_MAX_ATTEMPTS"

#: Named endpoints: ``SAFESTREAM_CYBERTIP_URL=test`` or ``=production``.
PRESETS: dict[str, str] = {
    "test": "https://exttest.cybertip.org/ispws",
    "production": "https://report.cybertip.org/ispws",
}
#: ``responseCode`` of success.
CODE_OK = 0
#: ``responseCode`` values as NCMEC documents them (cross-checked against several public
#: clients of the API, README "Reports"): the report id is unknown (an unfinished report
#: expires 24 h after it was opened, or 1 h after its last file); already retracted;
#: already finished.
CODE_NO_SUCH_REPORT = 5001
CODE_ALREADY_RETRACTED = 5101
CODE_ALREADY_FINISHED = 5102
#: Authentication required / not authorised.
AUTH_CODES = frozenset({2000, 3000, 3100, 3300})
#: HTTP statuses worth another try: the request did not take effect.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: How long a running submission holds its report before another may take over.
CLAIM = timedelta(minutes=15)


class CybertipError(SafestreamError):
    """The hotline did not accept a request; ``retryable`` when it may pass later."""

    retryable = False


class CybertipAuthError(CybertipError):
    """The hotline refused the credentials (HTTP 401/403): not retried."""


class CybertipRejected(CybertipError):
    """The hotline refused the request's content (a 4xx or a non-zero responseCode)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class CybertipUnavailable(CybertipError):
    """Transient failures (connection errors, 5xx, 429) outlasted every retry."""

    retryable = True


@dataclass(frozen=True)
class CybertipConfig:
    """Where and how to reach the reporting API; validated when built."""

    base_url: str
    user: str
    password: str = field(repr=False)
    timeout_s: float = 30.0
    max_attempts: int = 5
    backoff_s: float = 1.0
    backoff_cap_s: float = 60.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{ENV_URL} must be an http(s) URL or one of {sorted(PRESETS)}, "
                f"got {self.base_url!r}"
            )
        if parts.username or parts.password:
            raise ConfigError(f"put credentials in {ENV_USER}/{ENV_PASSWORD}, not in the URL")
        if not self.user or not self.password:
            raise ConfigError(f"set {ENV_USER} and {ENV_PASSWORD} (the hotline's API account)")
        if not 0 < self.timeout_s <= 600:
            raise ConfigError(f"{ENV_TIMEOUT} must be between 0 and 600 seconds")
        if not 1 <= self.max_attempts <= 20:
            raise ConfigError(f"{ENV_MAX_ATTEMPTS} must be between 1 and 20")
        if self.backoff_s < 0 or self.backoff_cap_s < self.backoff_s:
            raise ConfigError("backoff must be >= 0 and its cap at least the first delay")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CybertipConfig:
        """From ``SAFESTREAM_CYBERTIP_URL`` (a URL, ``test`` or ``production``), ``_USER``, ``_PASSWORD``."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_URL, "").strip()
        if not raw:
            raise ConfigError(
                f"set {ENV_URL} (test, production or a URL), {ENV_USER} and {ENV_PASSWORD} "
                "to submit reports"
            )
        url = PRESETS.get(raw.lower(), raw).rstrip("/")
        try:
            timeout = float(env.get(ENV_TIMEOUT, "") or cls.timeout_s)
            attempts = int(env.get(ENV_MAX_ATTEMPTS, "") or cls.max_attempts)
        except ValueError as exc:
            raise ConfigError(f"{ENV_TIMEOUT}/{ENV_MAX_ATTEMPTS} must be numbers: {exc}") from None
        return cls(
            base_url=url,
            user=env.get(ENV_USER, ""),
            password=env.get(ENV_PASSWORD, ""),
            timeout_s=timeout,
            max_attempts=attempts,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt`` (1-based): exponential, capped, jittered."""
        base = min(self.backoff_cap_s, self.backoff_s * 2 ** (attempt - 1))
        return float(base * (0.5 + random.random() / 2))  # jitter spreads retries


@dataclass(frozen=True)
class Exchange:
    """One request and its response (or the connection error instead), as stored."""

    step: str
    attempt: int
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    sent_at: datetime
    response_status: int | None = None
    response_headers: dict[str, str] | None = None
    response_body: str | None = None
    error: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class Response:
    """A parsed ``reportResponse``-style answer."""

    code: int
    description: str
    fields: dict[str, str]
    body: str


def parse_response(body: str) -> Response:
    """Read ``responseCode``, ``responseDescription`` and the other simple fields."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise CybertipRejected(f"the hotline answered with XML we cannot read: {exc}") from None
    fields = {el.tag: (el.text or "").strip() for el in root.iter() if el is not root}
    raw = fields.get("responseCode", "")
    try:
        code = int(raw)
    except ValueError:
        raise CybertipRejected(
            f"the hotline's answer has no numeric responseCode: {raw!r}"
        ) from None
    return Response(code, fields.get("responseDescription", ""), fields, body)


def _multipart(
    fields: dict[str, str], name: str, filename: str, content: bytes, media: str
) -> tuple[bytes, str, bytes]:
    """(body, content type, body with the file bytes replaced for the log)."""
    boundary = f"safestream-{uuid.uuid4().hex}"
    head = b""
    for key, value in fields.items():
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        ).encode()
    safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{safe_name}"\r\nContent-Type: {media}\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    digest = hashlib.sha256(content).hexdigest()
    placeholder = f"[file content not logged: {len(content)} bytes, sha256 {digest}]".encode()
    return (
        head + content + tail,
        f"multipart/form-data; boundary={boundary}",
        head + placeholder + tail,
    )


class CybertipClient:
    """The reporting API's calls, with retries on transient failures.

    ``on_exchange`` receives every request and response (or connection error)
    as it happens, to be stored; ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        config: CybertipConfig,
        *,
        on_exchange: Callable[[Exchange], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.on_exchange = on_exchange or (lambda _e: None)
        self.sleep = sleep
        parts = urlsplit(config.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path.rstrip("/")
        token = base64.b64encode(f"{config.user}:{config.password}".encode()).decode()
        self._auth = f"Basic {token}"

    def _once(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host,
                self._port,
                timeout=self.config.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.config.timeout_s)
        try:
            conn.request(method, self._path + path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def call(
        self,
        step: str,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str | None = None,
        *,
        logged_body: bytes | None = None,
    ) -> tuple[int, str]:
        """Send one request, retrying transient failures; (HTTP status, body text).

        Raises CybertipAuthError on 401/403 and CybertipUnavailable when every
        attempt failed transiently. Other statuses are returned to the caller.
        """
        headers = {"Accept": "application/xml"}
        if content_type:
            headers["Content-Type"] = content_type
        url = self.config.base_url + path
        shown = (logged_body if logged_body is not None else body).decode("utf-8", "replace")
        last = ""
        for attempt in range(1, self.config.max_attempts + 1):
            sent = utcnow()
            retry_after: float | None = None
            try:
                status, rheaders, data = self._once(
                    method, path, body, headers | {"Authorization": self._auth}
                )
            except (OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}"
                self._log(step, attempt, method, url, headers, shown, sent, error=last)
            else:
                text = data.decode("utf-8", "replace")
                self._log(
                    step,
                    attempt,
                    method,
                    url,
                    headers,
                    shown,
                    sent,
                    response_status=status,
                    response_headers=rheaders,
                    response_body=text,
                )
                if status in (401, 403):
                    raise CybertipAuthError(
                        f"the hotline refused our credentials on /{step} (HTTP {status}); check "
                        f"{ENV_USER} and {ENV_PASSWORD}; nothing was retried"
                    )
                if status not in TRANSIENT_STATUSES:
                    return status, text
                last = f"HTTP {status}"
                raw = rheaders.get("retry-after", "")
                retry_after = float(raw) if raw.isdigit() else None
            if attempt < self.config.max_attempts:
                wait = self.config.delay(attempt)
                if retry_after is not None:
                    wait = min(self.config.backoff_cap_s, max(wait, retry_after))
                log.warning("cybertip %s failed (%s); retry %d in %.1fs", step, last, attempt, wait)
                self.sleep(wait)
        raise CybertipUnavailable(
            f"/{step} failed {self.config.max_attempts} times ({last}); the hotline may be down: "
            "try again later (the submission resumes where it stopped)"
        )

    def _log(self, *request: Any, **outcome: Any) -> None:
        """Store one exchange: the request as sent and its response or error, with times."""
        self.on_exchange(Exchange(*request, **{**outcome, "received_at": utcnow()}))

    def _checked(
        self, step: str, status: int, text: str, *, accept: frozenset[int] = frozenset()
    ) -> Response:
        try:
            resp = parse_response(text)
        except CybertipRejected:
            if status >= 400:
                raise CybertipRejected(
                    f"/{step} refused with HTTP {status}: {text[:300]}"
                ) from None
            raise
        if resp.code in AUTH_CODES:
            raise CybertipAuthError(
                f"the hotline refused our credentials on /{step} (responseCode {resp.code}: "
                f"{resp.description or 'no description'}); check {ENV_USER} and {ENV_PASSWORD}"
            )
        if resp.code != CODE_OK and resp.code not in accept:
            raise CybertipRejected(
                f"/{step} refused: responseCode {resp.code} ({resp.description or 'no description'})",
                code=resp.code,
            )
        if status >= 400 and resp.code == CODE_OK:
            raise CybertipRejected(f"/{step} refused with HTTP {status}")
        return resp

    def _xml(self, step: str, document: str) -> Response:
        status, text = self.call(
            step, "POST", f"/{step}", document.encode("utf-8"), "text/xml; charset=utf-8"
        )
        return self._checked(step, status, text)

    def _form(self, step: str, remote_id: str, *, accept: frozenset[int] = frozenset()) -> Response:
        body = urlencode({"id": remote_id}).encode()
        status, text = self.call(
            step, "POST", f"/{step}", body, "application/x-www-form-urlencoded"
        )
        return self._checked(step, status, text, accept=accept)

    def submit(self, document: str) -> str:
        """POST the report XML; the hotline's report id."""
        resp = self._xml("submit", document)
        remote = resp.fields.get("reportId", "")
        if not remote:
            raise CybertipRejected("/submit succeeded without a reportId in the answer")
        return remote

    def upload(self, remote_id: str, filename: str, content: bytes, media_type: str) -> str:
        """POST one file of the report; the hotline's file id.

        The answer's ``hash`` (the MD5 of what the hotline received), when given,
        must be the file's: a mismatch is a transfer error (retryable).
        """
        body, ctype, logged = _multipart({"id": remote_id}, "file", filename, content, media_type)
        status, text = self.call("upload", "POST", "/upload", body, ctype, logged_body=logged)
        resp = self._checked("upload", status, text)
        file_id = resp.fields.get("fileId", "")
        if not file_id:
            raise CybertipRejected("/upload succeeded without a fileId in the answer")
        received = resp.fields.get("hash", "").strip().lower()
        sent = hashlib.md5(content, usedforsecurity=False).hexdigest()
        if received and received != sent:
            raise CybertipUnavailable(
                f"/upload: the hotline received a file with MD5 {received}, we sent {sent}; "
                "the upload is repeated on the next run"
            )
        return file_id

    def fileinfo(self, document: str) -> None:
        """POST one ``<fileDetails>`` document."""
        self._xml("fileinfo", document)

    def finish(self, remote_id: str) -> None:
        """File the report; a report already finished counts as finished."""
        self._form("finish", remote_id, accept=frozenset({CODE_ALREADY_FINISHED}))

    def retract(self, remote_id: str) -> None:
        """Withdraw an unfinished report; one already retracted or gone counts as withdrawn."""
        self._form(
            "retract", remote_id, accept=frozenset({CODE_ALREADY_RETRACTED, CODE_NO_SUCH_REPORT})
        )

    def status(self) -> Response:
        """Check that the endpoint answers and accepts the credentials."""
        status, text = self.call("status", "GET", "/status")
        return self._checked("status", status, text)

    def xsd(self) -> str:
        """The schema the hotline serves."""
        status, text = self.call("xsd", "GET", "/xsd")
        if status != 200:
            raise CybertipRejected(f"/xsd answered HTTP {status}: {text[:300]}")
        return text


# -- the submission workflow ------------------------------------------------------


@dataclass(frozen=True)
class FileSource:
    """A report file's bytes from the evidence store, or why there are none."""

    content: bytes | None
    media_type: str = "application/octet-stream"
    evidence_id: str | None = None


#: Finds a report file's preserved bytes: (report id, case account, file) -> source.
FileFinder = Callable[[int, str | None, ReportFile], FileSource]


def evidence_finder(evidence: Any, *, actor: str) -> FileFinder:
    """Files from the evidence store: the case account's active object with the file's SHA-256.

    Reading an object is audited by the evidence store (action
    ``evidence.report_upload``, with the report id).
    """

    def find(report_id: int, account_id: str | None, f: ReportFile) -> FileSource:
        if not f.sha256 or account_id is None:
            return FileSource(None)
        for record in evidence.for_accounts([account_id]):
            if record.sha256 == f.sha256:
                obj = evidence.get(
                    record.id,
                    actor=actor,
                    reason=f"CyberTipline submission of report {report_id}",
                    action="evidence.report_upload",
                    detail={"report_id": report_id},
                )
                return FileSource(obj.content, obj.media_type, record.id)
        return FileSource(None)

    return find


def no_files(_report_id: int, _account_id: str | None, _f: ReportFile) -> FileSource:
    """A finder for deployments without an evidence store: nothing is uploaded."""
    return FileSource(None)


def _file_name(f: ReportFile, index: int, media_type: str) -> str:
    if f.original_file_name:
        return f.original_file_name
    ext = mimetypes.guess_extension(media_type) or ".bin"
    return f"file-{index + 1}-{(f.sha256 or 'nohash')[:16]}{ext}"


class SubmissionService:
    """File stored reports with the hotline: resumable, never twice, every exchange stored."""

    def __init__(
        self,
        reports: ReportService,
        client_factory: Callable[[Callable[[Exchange], None]], CybertipClient],
        *,
        files: FileFinder = no_files,
    ) -> None:
        self.reports = reports
        self.repo = SubmissionRepository(reports.repo.store)
        self.client_factory = client_factory
        self.files = files

    @classmethod
    def from_config(
        cls,
        reports: ReportService,
        config: CybertipConfig,
        *,
        files: FileFinder = no_files,
        sleep: Callable[[float], None] = time.sleep,
    ) -> SubmissionService:
        """A service whose client uses ``config``."""
        return cls(
            reports,
            lambda log_fn: CybertipClient(config, on_exchange=log_fn, sleep=sleep),
            files=files,
        )

    # Fault-injection point for tests: called after each persisted step.
    def _after_step(self, step: str, state: SubmissionState) -> None:
        """Called after ``step`` was persisted (a crash here must resume cleanly)."""

    def _logger(self, report_id: int | None) -> Callable[[Exchange], None]:
        def store(e: Exchange) -> None:
            self.repo.log_exchange(report_id, e.__dict__)

        return store

    def submit(
        self, report_id: int, *, actor: str, override_reason: str | None = None
    ) -> dict[str, Any]:
        """Submit (or resume submitting) a report; returns the submission state.

        Refused before any request when the report has blocking findings and
        no override reason, when its case is not confirmed, or when it was
        already filed (ConflictError); while another run holds the report,
        :class:`~safestream.store.cases.SubmissionHeld` (a ConflictError).
        """
        self.preflight(report_id, override_reason=override_reason)
        state = self.repo.get_or_create(report_id)
        if state.status == "finished":
            # Filed, but the case move did not happen (a crash after /finish).
            self._mark_reported(report_id, state, actor, override_reason)
            return self.repo.get(report_id).to_dict()
        with self._claimed(report_id, actor) as state:
            # Read once held: an edit (PATCH) cannot change the report from here on,
            # and one made since the first preflight is checked again.
            self.preflight(report_id, override_reason=override_reason)
            stored = self.reports.get(report_id)
            case = self.reports.cases.get(stored.case_id)
            client = self.client_factory(self._logger(report_id))
            try:
                try:
                    state = self._run(client, report_id, stored.report, case.account_id, state)
                except CybertipRejected as exc:
                    if exc.code != CODE_NO_SUCH_REPORT:
                        raise
                    # The unfinished report being resumed expired at the hotline (24 h
                    # after it was opened, 1 h after its last file): submit it afresh, once.
                    state = self._expired(report_id, exc)
                    state = self._run(client, report_id, stored.report, case.account_id, state)
            except CybertipError as exc:
                self._failed(client, report_id, exc)
                raise
        self._mark_reported(report_id, state, actor, override_reason)
        return self.repo.get(report_id).to_dict()

    def preflight(self, report_id: int, *, override_reason: str | None = None) -> None:
        """Every check a submission makes before its first request; raises when it would fail.

        NotFoundError for an unknown report; ConflictError when the report has
        blocking findings and no override reason, when it was already filed,
        or when its case is not confirmed. Writes nothing (the API runs it
        before it queues a ``report_submit`` job).
        """
        stored = self.reports.get(report_id)
        case = self.reports.cases.get(stored.case_id)
        blockers = blocking(stored.findings)
        if blockers and not (override_reason or "").strip():
            codes = ", ".join(sorted({f.code for f in blockers}))
            raise ConflictError(
                f"report {report_id} has blocking findings ({codes}); fix them or give an "
                "override reason"
            )
        state = self.repo.find(report_id)
        if state is not None and state.status == "finished":
            if case.status == "confirmed":
                return  # filed, but the case move is still to do: allowed
            raise ConflictError(
                f"report {report_id} was already filed (hotline report id "
                f"{state.remote_report_id}); it is never submitted twice"
            )
        if case.status != "confirmed":
            raise ConflictError(
                f"report {report_id}'s case {case.id} is {case.status!r}; only a report of a "
                "confirmed case can be submitted"
            )

    @contextmanager
    def _claimed(self, report_id: int, actor: str) -> Iterator[SubmissionState]:
        state = self.repo.claim(report_id, actor, until=utcnow() + CLAIM)
        try:
            yield state
        finally:
            self.repo.release(report_id)

    def _run(
        self,
        client: CybertipClient,
        report_id: int,
        report: Report,
        account_id: str | None,
        state: SubmissionState,
    ) -> SubmissionState:
        if state.remote_report_id is None:
            remote = client.submit(report_xml(report))
            state = self.repo.update(
                report_id,
                status="in_progress",
                remote_report_id=remote,
                steps={},
                submitted_at=utcnow(),
                attempts=state.attempts + 1,
                last_error=None,
            )
            self._after_step("submit", state)
        assert state.remote_report_id is not None
        remote = state.remote_report_id
        for index, f in enumerate(report.files):
            key = str(index)
            done = dict(state.steps.get(key) or {})
            if "preserved" not in done:
                source = self.files(report_id, account_id, f)
                if source.content is None:
                    done["preserved"] = False
                else:
                    file_id = client.upload(
                        remote,
                        _file_name(f, index, source.media_type),
                        source.content,
                        source.media_type,
                    )
                    done |= {
                        "preserved": True,
                        "file_id": file_id,
                        "evidence_id": source.evidence_id,
                    }
                state = self.repo.update(report_id, steps=state.steps | {key: done})
                self._after_step("upload", state)
            if done.get("preserved") and "fileinfo_at" not in done:
                # fileDetails need the hotline's fileId: a file not uploaded has none, and
                # its hashes are in the report's additionalInfo instead.
                details = file_details_element(
                    f, report_id=remote, file_id=str(done.get("file_id") or "")
                )
                xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
                    details, encoding="unicode"
                )
                client.fileinfo(xml)
                done["fileinfo_at"] = utcnow().isoformat()
                state = self.repo.update(report_id, steps=state.steps | {key: done})
                self._after_step("fileinfo", state)
        client.finish(remote)
        state = self.repo.update(
            report_id, status="finished", finished_at=utcnow(), last_error=None
        )
        self._after_step("finish", state)
        return state

    def _failed(self, client: CybertipClient, report_id: int, exc: CybertipError) -> None:
        """After a failed run: retract the unfinished remote report only if it was refused.

        A refusal of the report's content (:class:`CybertipRejected`) cannot be
        finished as it is: the remote report is retracted and the next run starts
        afresh. An outage (:class:`CybertipUnavailable`: connection errors, 5xx,
        429 past every retry) or refused credentials say nothing about the report:
        its remote id and finished steps are kept and the next run resumes it, so an
        outage never turns into a retract and a second remote report.
        """
        state = self.repo.get(report_id)
        message = f"{type(exc).__name__}: {exc}"
        if state.remote_report_id is None:
            self.repo.update(report_id, last_error=message)
            return
        if isinstance(exc, CybertipRejected) and exc.code == CODE_NO_SUCH_REPORT:
            self._expired(report_id, exc)  # nothing to retract; the next run starts afresh
            return
        if not isinstance(exc, CybertipRejected):
            self.repo.update(
                report_id,
                last_error=(
                    f"{message}; hotline report {state.remote_report_id} kept, "
                    "the next run resumes it"
                ),
            )
            return
        try:
            client.retract(state.remote_report_id)
        except CybertipError as rexc:
            # Not retracted: keep the remote id, so the next run resumes that report.
            self.repo.update(report_id, last_error=f"{message}; retract failed: {rexc}")
            return
        self.repo.update(
            report_id,
            status="retracted",
            remote_report_id=None,
            steps={},
            retracted=[*state.retracted, state.remote_report_id],
            last_error=message,
        )

    def _expired(self, report_id: int, exc: CybertipRejected) -> SubmissionState:
        """Forget a remote report the hotline no longer has; the next ``_run`` submits anew."""
        state = self.repo.get(report_id)
        return self.repo.update(
            report_id,
            status="pending",
            remote_report_id=None,
            steps={},
            retracted=[*state.retracted, state.remote_report_id],
            last_error=(
                f"{type(exc).__name__}: {exc}; hotline report {state.remote_report_id} no "
                "longer exists (unfinished reports expire), submitted afresh"
            ),
        )

    def _mark_reported(
        self, report_id: int, state: SubmissionState, actor: str, override_reason: str | None
    ) -> None:
        self.reports.mark_submitted(
            report_id,
            actor=actor,
            reference=f"cybertipline:{state.remote_report_id}",
            override_reason=override_reason,
        )

    def submissions(self, report_id: int) -> dict[str, Any]:
        """A report's submission state and every stored request and response."""
        self.reports.get(report_id)
        state = self.repo.find(report_id)
        return {
            "report_id": report_id,
            "submission": state.to_dict() if state else None,
            "exchanges": self.repo.exchanges(report_id),
        }

    def fetch_xsd(self) -> str:
        """The schema served by the hotline's ``/xsd`` (the request is stored)."""
        return self.client_factory(self._logger(None)).xsd()


def validate_xml(document: str | bytes, xsd: str | bytes) -> list[str]:
    """Errors of ``document`` against the XSD ``xsd`` (empty: valid). Uses lxml."""
    from lxml import etree  # type: ignore[import-untyped]  # no stubs shipped

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        schema_doc = etree.fromstring(xsd.encode() if isinstance(xsd, str) else xsd, parser)
        schema = etree.XMLSchema(schema_doc)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise InputError(f"the XSD cannot be read: {exc}") from None
    raw = document.encode() if isinstance(document, str) else document
    try:
        doc = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise InputError(f"the report is not well-formed XML: {exc}") from None
    targets = [doc]
    if doc.tag == "cybertiplineExport":
        # The export bundles <report> and each <fileDetails>: each is sent alone.
        targets = list(doc)
    errors: list[str] = []
    for el in targets:
        if not schema.validate(copy.deepcopy(el)):
            errors.extend(f"<{el.tag}> line {e.line}: {e.message}" for e in schema.error_log)
    return errors


__all__ = [
    "CLAIM",
    "CODE_ALREADY_FINISHED",
    "CODE_OK",
    "PRESETS",
    "CybertipAuthError",
    "CybertipClient",
    "CybertipConfig",
    "CybertipError",
    "CybertipRejected",
    "CybertipUnavailable",
    "Exchange",
    "FileSource",
    "SubmissionService",
    "evidence_finder",
    "no_client",
    "no_files",
    "parse_response",
    "service_from_env",
    "validate_xml",
]


def no_client(_log: Callable[[Exchange], None]) -> CybertipClient:
    """A client factory for reading only: any call says the API is not configured."""
    raise ConfigError(f"set {ENV_URL}, {ENV_USER} and {ENV_PASSWORD} to reach the CyberTipline API")


def service_from_env(
    reports: ReportService, *, actor: str, evidence: Any | None = None
) -> SubmissionService:
    """A submission service from ``SAFESTREAM_CYBERTIP_*`` and the evidence store's settings.

    Files are uploaded when they are preserved in the evidence store (the
    evidence keys are needed only then).
    """
    from safestream.evidence.store import EvidenceStore

    config = CybertipConfig.from_env()
    if evidence is None:
        evidence = EvidenceStore.from_env(reports.repo.store, need_keys=False)
    return SubmissionService.from_config(
        reports, config, files=evidence_finder(evidence, actor=actor)
    )
