"""Evidence test support: a key ring, a clock tests can move, an evidence store per backend."""

from __future__ import annotations

import base64
import io
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from safestream.demo import synthetic_image
from safestream.evidence.backends import EvidenceBackend, FilesystemBackend, S3Backend
from safestream.evidence.crypto import KeyRing
from safestream.evidence.store import EvidenceStore
from safestream.store.db import Store

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(32, 64))).decode()


class Clock:
    """A settable clock (no wall-clock assertions in tests)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.parse(f"k1:{KEY_A}", source="test")


@pytest.fixture
def evidence(store: Store, tmp_path: Path, ring: KeyRing, clock: Clock) -> EvidenceStore:
    return EvidenceStore(store, tmp_path / "evidence", ring, clock=clock)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on 127.0.0.1 (real HTTP; one per test process)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    """A real boto3 client for the moto server (fake credentials)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def s3_backend(endpoint: str, prefix: str = "evidence") -> S3Backend:
    """An S3 backend on a fresh bucket of the moto server."""
    client = s3_client(endpoint)
    bucket = f"ev-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    return S3Backend(bucket, prefix, endpoint_url=endpoint, client=client)


@pytest.fixture(params=["fs", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> EvidenceBackend:
    """Each evidence test case runs on the filesystem and on S3 (moto server)."""
    if request.param == "fs":
        return FilesystemBackend(tmp_path / "evidence")
    return s3_backend(request.getfixturevalue("moto_endpoint"))


@pytest.fixture
def any_evidence(
    store: Store, backend: EvidenceBackend, ring: KeyRing, clock: Clock
) -> EvidenceStore:
    """An evidence store on each backend."""
    return EvidenceStore(store, backend, ring, clock=clock)


def png(seed: int) -> bytes:
    """A synthetic PNG (drawn shapes and noise; never real material)."""
    buf = io.BytesIO()
    synthetic_image(seed, (96, 64)).save(buf, "PNG")
    return buf.getvalue()


def custody_app(store: Store, evidence: EvidenceStore, requests: object | None = None) -> Any:
    """The service app (it includes the requests, evidence and audit routers)."""
    from safestream.api.app import create_app
    from safestream.api.settings import ServiceSettings

    app = create_app(store, settings=ServiceSettings(max_upload_bytes=4 * 1024 * 1024))
    app.state.safestream_evidence = evidence
    if requests is not None:
        app.state.safestream_requests = requests
    return app
