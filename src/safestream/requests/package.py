"""Response packages: the data found for a request's identifiers, as a signed archive.

The archive is a ZIP with::

    request.json        the request (type, agency, legal basis, deadline, identifiers)
    NON-DISCLOSURE.txt  only under a non-disclosure order: the notice, first thing seen
    checks.json         check records naming the identifiers: IP, source port, times
    cases/<id>.json     each case concerning the identifiers (its account is one, or a
                        detection came from a check naming one), with its detections
    reports/<id>.json   each stored report of those cases
    evidence/<id>.json  each preserved object's record (hash, type, metadata)
    evidence/<id>.bin   each preserved object's content (decrypted, SHA-256 checked)
    manifest.json       SHA-256 and size of every file above, the package time, the
                        non-disclosure flag, and counts of cases and reports
    manifest.sig        Ed25519 signature of manifest.json's exact bytes
    signing-key.pub     the raw 32-byte Ed25519 public key, hex

Ed25519 rather than an HMAC: the recipient verifies with the public key alone
and cannot forge a package; the provider publishes (or sends out of band) the
key fingerprint. The signing key is a PEM (PKCS#8) file named by
``SAFESTREAM_EXPORT_SIGNING_KEY``; ``safestream requests export`` creates one
(mode 0600) when the named file does not exist.

Packages are built into memory: a request's evidence is expected to be MBs,
not GBs. Streaming to disk is left for when it is needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from safestream.errors import ConfigError, InputError
from safestream.evidence.store import EvidenceStore, record_dict
from safestream.requests.service import RequestService
from safestream.store import lerequests as sql
from safestream.store.lerequests import NDO_NOTICE

ENV_SIGNING_KEY = "SAFESTREAM_EXPORT_SIGNING_KEY"


def load_signing_key(path: Path, *, create: bool = False) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PEM); with ``create``, a new one when it is missing."""
    if not path.exists():
        if not create:
            raise ConfigError(f"no export signing key at {path}; set {ENV_SIGNING_KEY}")
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return key
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise ConfigError(f"cannot load the export signing key {path}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return loaded


def signing_key_from_env(
    environ: Mapping[str, str] | None = None, *, create: bool = False
) -> Ed25519PrivateKey:
    """The key named by ``SAFESTREAM_EXPORT_SIGNING_KEY``."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_SIGNING_KEY, "").strip()
    if not raw:
        raise ConfigError(
            f"set {ENV_SIGNING_KEY} to the path of an Ed25519 PEM key to sign response packages"
        )
    return load_signing_key(Path(raw).expanduser(), create=create)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode()


def build_package(
    requests: RequestService,
    evidence: EvidenceStore | None,
    request_id: int,
    signing_key: Ed25519PrivateKey,
    *,
    actor: str,
    reason: str,
) -> bytes:
    """The signed ZIP for one request (audited, including every evidence read)."""
    if not reason.strip():
        raise InputError("exporting a response package needs a reason")
    request = requests.get(request_id)
    now = requests.clock()
    files: dict[str, bytes] = {"request.json": _json(request.to_dict())}
    if request.non_disclosure:
        files["NON-DISCLOSURE.txt"] = (
            f"{NDO_NOTICE}.\nRequest {request_id} ({request.agency}, {request.legal_basis}).\n"
        ).encode()
    with requests.store.engine.connect() as conn:
        checks = sql.checks_for(conn, request.identifiers)
        cases = sql.cases_for(conn, request.identifiers)
        reports = sql.reports_for(conn, [c["id"] for c in cases])
    files["checks.json"] = _json(checks)
    for case in cases:
        files[f"cases/{case['id']}.json"] = _json(case)
    for report in reports:
        files[f"reports/{report['id']}.json"] = _json(report)
    if evidence is not None:
        for record in evidence.for_accounts(request.identifiers):
            obj = evidence.get(
                record.id,
                actor=actor,
                reason=f"response package for request {request_id}: {reason}",
                action="evidence.export",
                detail={"request_id": request_id},
            )
            files[f"evidence/{record.id}.json"] = _json(
                {**record_dict(record), "metadata": obj.metadata}
            )
            files[f"evidence/{record.id}.bin"] = obj.content
    manifest = {
        "format": "safestream-response-package/1",
        "request_id": request_id,
        "created_at": now.isoformat(),
        "non_disclosure": request.non_disclosure,
        "cases": len(cases),
        "reports": len(reports),
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}
            for name, data in sorted(files.items())
        },
    }
    manifest_bytes = _json(manifest)
    public = signing_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
        zf.writestr("manifest.json", manifest_bytes)
        zf.writestr("manifest.sig", signing_key.sign(manifest_bytes).hex())
        zf.writestr("signing-key.pub", public.hex())
    requests.audit.append(
        actor=actor,
        action="request.export",
        object_type="le_request",
        object_id=str(request_id),
        reason=reason,
        detail={
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            "files": len(files),
            "cases": [c["id"] for c in cases],
            "reports": [r["id"] for r in reports],
            "public_key": public.hex(),
        },
        now=now,
    )
    return buf.getvalue()


def verify_package(data: bytes, public_key_hex: str | None = None) -> dict[str, Any]:
    """Check a package's signature and every file's SHA-256; returns the manifest.

    Pass the public key you trust (hex); without it, the key inside the archive
    is used, which proves integrity but not origin.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest_bytes = zf.read("manifest.json")
        signature = bytes.fromhex(zf.read("manifest.sig").decode())
        key_hex = public_key_hex or zf.read("signing-key.pub").decode()
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)).verify(
                signature, manifest_bytes
            )
        except InvalidSignature:
            raise InputError("the package's manifest signature is invalid") from None
        manifest: dict[str, Any] = json.loads(manifest_bytes)
        names = set(zf.namelist()) - {"manifest.json", "manifest.sig", "signing-key.pub"}
        if names != set(manifest["files"]):
            raise InputError("the package's files differ from its manifest")
        for name, info in manifest["files"].items():
            if hashlib.sha256(zf.read(name)).hexdigest() != info["sha256"]:
                raise InputError(f"{name} does not match its SHA-256 in the manifest")
    return manifest
