"""Evidence test support: a key ring, a clock tests can move, an evidence store per backend."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from safestream.demo import synthetic_image
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
