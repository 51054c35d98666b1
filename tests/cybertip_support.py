"""A fake CyberTipline Reporting API: a real HTTP server on 127.0.0.1, for tests.

It implements the flow as modelled in ``safestream.reports.submission``
(``/submit``, ``/upload``, ``/fileinfo``, ``/finish``, ``/retract``, ``/status``,
``/xsd``; HTTP basic auth; ``reportResponse`` XML) and records every call.
Faults are injectable: per call number (``faults``) or per path (``path_faults``,
a queue consumed by the next calls to that path):

- ``"503"`` / ``"429"``: that status, nothing done;
- ``"drop"``: the connection is closed before anything is done;
- ``"drop_after"``: the request takes effect, then the connection is closed;
- ``"invalid"``: a validation refusal (HTTP 400, responseCode 4100);
- ``"401"``: the credentials refused (as when they are revoked mid-flow).

``TEST_XSD`` is a schema of our own for the part of NCMEC's report structure we
emit, written from public clients of the API (NCMEC's XSD is not redistributed
and is not in this repository); response codes are NCMEC's documented ones.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from lxml import etree  # type: ignore[import-untyped]

USER, PASSWORD = "esp-test", "test-password-1"

_TYPES = """
  <xs:complexType name="contactPoint"><xs:simpleContent><xs:extension base="xs:string">
    <xs:attribute name="type" type="xs:string"/>
    <xs:attribute name="verified" type="xs:boolean"/>
  </xs:extension></xs:simpleContent></xs:complexType>
  <xs:complexType name="person"><xs:sequence>
    <xs:element name="firstName" type="xs:string" minOccurs="0"/>
    <xs:element name="lastName" type="xs:string" minOccurs="0"/>
    <xs:element name="phone" type="contactPoint" minOccurs="0" maxOccurs="unbounded"/>
    <xs:element name="email" type="contactPoint" minOccurs="0" maxOccurs="unbounded"/>
  </xs:sequence></xs:complexType>
  <xs:simpleType name="eventName"><xs:restriction base="xs:string">
    <xs:enumeration value="Login"/><xs:enumeration value="Registration"/>
    <xs:enumeration value="Purchase"/><xs:enumeration value="Upload"/>
    <xs:enumeration value="Other"/><xs:enumeration value="Unknown"/>
  </xs:restriction></xs:simpleType>
  <xs:complexType name="ipEvent"><xs:sequence>
    <xs:element name="ipAddress" type="xs:string"/>
    <xs:element name="eventName" type="eventName" minOccurs="0"/>
    <xs:element name="dateTime" type="xs:dateTime" minOccurs="0"/>
    <xs:element name="possibleProxy" type="xs:boolean" minOccurs="0"/>
    <xs:element name="port" type="xs:int" minOccurs="0"/>
  </xs:sequence></xs:complexType>
  <xs:complexType name="deviceId"><xs:sequence>
    <xs:element name="idType" type="xs:string"/>
    <xs:element name="idValue" type="xs:string"/>
  </xs:sequence></xs:complexType>
  <xs:complexType name="disabled"><xs:simpleContent><xs:extension base="xs:boolean">
    <xs:attribute name="disabledDate" type="xs:dateTime"/>
    <xs:attribute name="userNotified" type="xs:boolean"/>
    <xs:attribute name="userNotifiedDate" type="xs:dateTime"/>
  </xs:extension></xs:simpleContent></xs:complexType>
  <xs:group name="account"><xs:sequence>
    <xs:element name="espIdentifier" type="xs:string" minOccurs="0"/>
    <xs:element name="screenName" type="xs:string" minOccurs="0"/>
    <xs:element name="displayName" type="xs:string" minOccurs="0" maxOccurs="unbounded"/>
    <xs:element name="profileUrl" type="xs:string" minOccurs="0" maxOccurs="unbounded"/>
    <xs:element name="ipCaptureEvent" type="ipEvent" minOccurs="0" maxOccurs="unbounded"/>
    <xs:element name="deviceId" type="deviceId" minOccurs="0" maxOccurs="unbounded"/>
    <xs:element name="accountTemporarilyDisabled" type="disabled" minOccurs="0"/>
    <xs:element name="accountPermanentlyDisabled" type="disabled" minOccurs="0"/>
  </xs:sequence></xs:group>
  <xs:complexType name="empty"/>
"""

#: Our own schema of the part of NCMEC's report structure we emit: element names, nesting,
#: order, cardinalities and enumerations as public clients of the Reporting API have them
#: (one generated from the XSD NCMEC serves). Not NCMEC's XSD, which is not redistributed.
TEST_XSD = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  {_TYPES}
  <xs:element name="report"><xs:complexType><xs:sequence>
    <xs:element name="incidentSummary"><xs:complexType><xs:sequence>
      <xs:element name="incidentType">
        <xs:simpleType><xs:restriction base="xs:string">
          <xs:enumeration
            value="Child Pornography (possession, manufacture, and distribution)"/>
          <xs:enumeration value="Child Sex Trafficking"/>
          <xs:enumeration value="Child Sex Tourism"/>
          <xs:enumeration value="Child Sexual Molestation"/>
          <xs:enumeration value="Misleading Domain Name"/>
          <xs:enumeration value="Misleading Words or Digital Images on the Internet"/>
          <xs:enumeration value="Online Enticement of Children for Sexual Acts"/>
          <xs:enumeration value="Unsolicited Obscene Material Sent to a Child"/>
        </xs:restriction></xs:simpleType>
      </xs:element>
      <xs:element name="platform" type="xs:string" minOccurs="0"/>
      <xs:element name="escalateToHighPriority" minOccurs="0">
        <xs:simpleType><xs:restriction base="xs:string">
          <xs:minLength value="1"/><xs:maxLength value="3000"/>
        </xs:restriction></xs:simpleType>
      </xs:element>
      <xs:element name="reportAnnotations" minOccurs="0"><xs:complexType><xs:sequence>
        <xs:element name="sextortion" type="empty" minOccurs="0"/>
        <xs:element name="csamSolicitation" type="empty" minOccurs="0"/>
        <xs:element name="minorToMinorInteraction" type="empty" minOccurs="0"/>
        <xs:element name="spam" type="empty" minOccurs="0"/>
        <xs:element name="sadisticOnlineExploitation" type="empty" minOccurs="0"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="incidentDateTime" type="xs:dateTime" minOccurs="0"/>
      <xs:element name="incidentDateTimeDescription" type="xs:string" minOccurs="0"/>
    </xs:sequence></xs:complexType></xs:element>
    <xs:element name="internetDetails" minOccurs="0" maxOccurs="unbounded">
      <xs:complexType><xs:choice>
        <xs:element name="webPageIncident"><xs:complexType><xs:sequence>
          <xs:element name="url" type="xs:string" maxOccurs="unbounded"/>
          <xs:element name="additionalInfo" type="xs:string" minOccurs="0"/>
        </xs:sequence></xs:complexType></xs:element>
        <xs:element name="chatImIncident"><xs:complexType><xs:sequence>
          <xs:element name="chatClient" type="xs:string" minOccurs="0"/>
          <xs:element name="chatRoomName" type="xs:string" minOccurs="0"/>
          <xs:element name="content" type="xs:string" minOccurs="0"/>
          <xs:element name="additionalInfo" type="xs:string" minOccurs="0"/>
        </xs:sequence></xs:complexType></xs:element>
        <xs:element name="peer2peerIncident"><xs:complexType><xs:sequence>
          <xs:element name="client" type="xs:string" minOccurs="0"/>
          <xs:element name="ipCaptureEvent" type="ipEvent" minOccurs="0" maxOccurs="unbounded"/>
          <xs:element name="fileNames" type="xs:string" minOccurs="0"/>
          <xs:element name="additionalInfo" type="xs:string" minOccurs="0"/>
        </xs:sequence></xs:complexType></xs:element>
      </xs:choice></xs:complexType>
    </xs:element>
    <xs:element name="reporter"><xs:complexType><xs:sequence>
      <xs:element name="reportingPerson" type="person"/>
      <xs:element name="contactPerson" type="person" minOccurs="0"/>
      <xs:element name="companyTemplate" type="xs:string" minOccurs="0"/>
    </xs:sequence></xs:complexType></xs:element>
    <xs:element name="personOrUserReported" minOccurs="0"><xs:complexType><xs:sequence>
      <xs:element name="personOrUserReportedPerson" type="person" minOccurs="0"/>
      <xs:group ref="account"/>
      <xs:element name="additionalInfo" type="xs:string" minOccurs="0"/>
    </xs:sequence></xs:complexType></xs:element>
    <xs:element name="intendedRecipient" minOccurs="0" maxOccurs="unbounded">
      <xs:complexType><xs:sequence>
        <xs:element name="intendedRecipientPerson" type="person" minOccurs="0"/>
        <xs:group ref="account"/>
        <xs:element name="additionalInfo" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType>
    </xs:element>
    <xs:element name="victim" minOccurs="0" maxOccurs="unbounded"><xs:complexType><xs:sequence>
      <xs:element name="victimPerson" type="person"/>
      <xs:group ref="account"/>
      <xs:element name="additionalInfo" type="xs:string" minOccurs="0"/>
    </xs:sequence></xs:complexType></xs:element>
    <xs:element name="additionalInfo" type="xs:string" minOccurs="0"/>
  </xs:sequence></xs:complexType></xs:element>
  <xs:element name="fileDetails"><xs:complexType><xs:sequence>
    <xs:element name="reportId" type="xs:string"/>
    <xs:element name="fileId">
      <xs:simpleType><xs:restriction base="xs:string">
        <xs:minLength value="1"/>
      </xs:restriction></xs:simpleType>
    </xs:element>
    <xs:element name="originalFileName" type="xs:string" minOccurs="0"/>
    <xs:element name="uploadedToEspTimestamp" type="xs:dateTime" minOccurs="0"/>
    <xs:element name="fileViewedByEsp" type="xs:boolean" minOccurs="0"/>
    <xs:element name="publiclyAvailable" type="xs:boolean" minOccurs="0"/>
    <xs:element name="fileAnnotations" minOccurs="0"><xs:complexType><xs:sequence>
      <xs:element name="liveStreaming" type="empty" minOccurs="0"/>
      <xs:element name="generativeAi" type="empty" minOccurs="0"/>
    </xs:sequence></xs:complexType></xs:element>
    <xs:element name="originalFileHash" minOccurs="0" maxOccurs="unbounded">
      <xs:complexType><xs:simpleContent><xs:extension base="xs:string">
        <xs:attribute name="hashType" type="xs:string" use="required"/>
      </xs:extension></xs:simpleContent></xs:complexType>
    </xs:element>
    <xs:element name="ipCaptureEvent" type="ipEvent" minOccurs="0"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
"""

#: NCMEC's documented response codes (the fake answers as the real API is documented to):
#: validation failed, malformed XML, report does not exist, already retracted, already
#: finished, authentication required.
CODE_INVALID, CODE_MALFORMED, CODE_NO_REPORT = 4100, 4110, 5001
CODE_RETRACTED, CODE_FINISHED, CODE_AUTH = 5101, 5102, 2000


def response_xml(code: int, description: str, root: str = "reportResponse", **fields: str) -> str:
    """A ``reportResponse``-style answer."""
    el = ET.Element(root)
    ET.SubElement(el, "responseCode").text = str(code)
    ET.SubElement(el, "responseDescription").text = description
    for key, value in fields.items():
        ET.SubElement(el, key).text = value
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(el, encoding="unicode")


@dataclass
class Call:
    """One request as received and the answer sent (None: the connection was dropped)."""

    method: str
    path: str
    body: bytes
    status: int | None = None
    response: str | None = None


@dataclass
class FakeReport:
    """A report held by the fake hotline."""

    xml: str
    state: str = "open"  # open, finished, retracted
    files: dict[str, bytes] = field(default_factory=dict)
    file_details: list[str] = field(default_factory=list)


class FakeCybertip:
    """The fake hotline's state and faults (thread-safe)."""

    def __init__(self, *, validate: bool = True) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.reports: dict[str, FakeReport] = {}
        self.faults: dict[int, str] = {}
        self.path_faults: dict[str, list[str]] = {}
        self.schema = etree.XMLSchema(etree.fromstring(TEST_XSD.encode())) if validate else None
        #: The next N uploads answer a wrong MD5 (a transfer error).
        self.corrupt_uploads = 0
        self._next_report = 7000
        self._next_file = 100
        self.url = ""

    # -- queries for tests --

    def count(self, path: str) -> int:
        """Calls made to ``path``."""
        return sum(1 for c in self.calls if c.path == path)

    def in_state(self, state: str) -> list[str]:
        """Remote report ids in ``state``."""
        return [rid for rid, r in self.reports.items() if r.state == state]

    # -- handling --

    def _valid(self, body: bytes, root: str) -> str | None:
        try:
            doc = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as exc:
            return f"malformed XML: {exc}"
        if doc.tag != root:
            return f"expected <{root}>, got <{doc.tag}>"
        if self.schema is not None and not self.schema.validate(doc):
            return f"schema: {self.schema.error_log.last_error}"
        return None

    def _open(self, rid: str) -> tuple[int, str] | FakeReport:
        report = self.reports.get(rid)
        if report is None or report.state == "expired":
            return 400, response_xml(CODE_NO_REPORT, f"report {rid} does not exist")
        if report.state == "finished":
            return 400, response_xml(CODE_FINISHED, "report already finished")
        if report.state == "retracted":
            return 400, response_xml(CODE_RETRACTED, "report already retracted")
        return report

    def handle(self, method: str, path: str, body: bytes, ctype: str) -> tuple[int, str]:
        """Answer one authenticated request (the lock is held)."""
        if method == "GET" and path == "/status":
            return 200, response_xml(0, "Remote User : esp-test, Remote Ip : 127.0.0.1")
        if method == "GET" and path == "/xsd":
            return 200, TEST_XSD
        if method != "POST":
            return 405, response_xml(CODE_INVALID, "method not allowed")
        if path == "/submit":
            problem = self._valid(body, "report")
            if problem:
                code = CODE_MALFORMED if problem.startswith("malformed") else CODE_INVALID
                return 400, response_xml(code, problem)
            self._next_report += 1
            rid = str(self._next_report)
            self.reports[rid] = FakeReport(body.decode("utf-8"))
            return 200, response_xml(0, "Success", reportId=rid)
        if path == "/upload":
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + body
            )
            parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
            rid = str(parts["id"].get_content()).strip() if "id" in parts else ""
            found = self._open(rid)
            if not isinstance(found, FakeReport):
                return found
            if "file" not in parts:
                return 400, response_xml(CODE_INVALID, "no file part")
            self._next_file += 1
            fid = str(self._next_file)
            data = parts["file"].get_payload(decode=True)
            found.files[fid] = data
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if self.corrupt_uploads:
                self.corrupt_uploads -= 1
                md5 = "0" * 32
            return 200, response_xml(0, "Success", reportId=rid, fileId=fid, hash=md5)
        if path == "/fileinfo":
            problem = self._valid(body, "fileDetails")
            if problem:
                code = CODE_MALFORMED if problem.startswith("malformed") else CODE_INVALID
                return 400, response_xml(code, problem)
            doc = ET.fromstring(body)
            found = self._open(doc.findtext("reportId") or "")
            if not isinstance(found, FakeReport):
                return found
            # As documented: fileId must not be blank and must name a file of the report.
            fid = (doc.findtext("fileId") or "").strip()
            if fid not in found.files:
                return 400, response_xml(5002, f"file {fid!r} does not exist in this report")
            found.file_details.append(body.decode("utf-8"))
            return 200, response_xml(0, "Success")
        if path in ("/finish", "/retract"):
            rid = (parse_qs(body.decode()).get("id") or [""])[0]
            found = self._open(rid)
            if not isinstance(found, FakeReport):
                return found
            if path == "/retract":
                found.state = "retracted"
                return 200, response_xml(0, "Success")
            found.state = "finished"
            done = ET.Element("reportDoneResponse")
            ET.SubElement(done, "responseCode").text = "0"
            ET.SubElement(done, "reportId").text = rid
            files = ET.SubElement(done, "files")
            for fid in found.files:
                ET.SubElement(files, "fileId").text = fid
            return 200, ET.tostring(done, encoding="unicode")
        return 404, response_xml(CODE_INVALID, f"no endpoint {path}")


def _handler(fake: FakeCybertip) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0].removeprefix("/ispws")
            call = Call(method, path, body)
            with fake.lock:
                fake.calls.append(call)
                fault = fake.faults.pop(len(fake.calls), None)
                if fault is None and fake.path_faults.get(path):
                    fault = fake.path_faults[path].pop(0)
                if self.headers.get("Authorization") != expected:
                    status, text = 401, response_xml(CODE_AUTH, "authentication failed")
                elif fault == "drop":
                    status, text = 0, ""
                elif fault in ("503", "429"):
                    status, text = int(fault), "<html>busy</html>"
                elif fault == "401":
                    status, text = 401, response_xml(CODE_AUTH, "injected authentication failure")
                elif fault == "invalid":
                    status, text = 400, response_xml(CODE_INVALID, "injected validation failure")
                else:
                    status, text = fake.handle(
                        method, path, body, self.headers.get("Content-Type", "")
                    )
                    if fault == "drop_after":
                        status = 0
            if status == 0:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            call.status, call.response = status, text
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status in (429, 503):
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler


@contextmanager
def running(fake: FakeCybertip | None = None) -> Iterator[FakeCybertip]:
    """Serve ``fake`` on 127.0.0.1 (a free port) for the block; its ``url`` is set."""
    fake = fake or FakeCybertip()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/ispws"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
