"""Device fixtures: a server with keys, a bank of synthetic images, a published filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_support import Known, bank_entries, known_images, make_guard
from safestream.device import DeviceGuard, DeviceServer
from safestream.device.server import TokenBucket


@pytest.fixture(scope="session")
def known() -> list[Known]:
    return known_images()


@pytest.fixture
def server(tmp_path: Path, known: list[Known]) -> DeviceServer:
    srv = DeviceServer(tmp_path / "device", limiter=TokenBucket(1000.0, 100_000))
    srv.keygen()
    srv.publish(bank_entries(known), ["synthetic-known"])
    return srv


@pytest.fixture
def guard(server: DeviceServer) -> DeviceGuard:
    return make_guard(server)
