"""The SDK's HTTP filter source and evaluator against a real server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from device_support import UNRELATED_SEEDS, Known, jpeg
from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.demo import synthetic_image
from safestream.device import DeviceGuard, DeviceServer, HttpEvaluator, HttpFilterSource
from safestream.device.server import TokenBucket
from safestream.store.db import Store
from safestream.store.service import KeyRepository


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def base_url(tmp_path: Path, server: DeviceServer) -> Iterator[tuple[str, str]]:
    store = Store.open(data_dir=tmp_path / "data")
    app = create_app(store, settings=ServiceSettings(refresh_interval_s=0.05))
    app.state.device_server = server
    key, _ = KeyRepository(store).create("integrator", "device")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        srv.should_exit = True
        thread.join(10)
        store.dispose()


def test_http_sdk_end_to_end(
    base_url: tuple[str, str], server: DeviceServer, known: list[Known]
) -> None:
    url, key = base_url
    guard = DeviceGuard(HttpFilterSource(url, key), HttpEvaluator(url, key), server.public_key())
    assert guard.check_image(known[2].data).action == "block"
    assert guard.check_image(jpeg(synthetic_image(UNRELATED_SEEDS[4]))).action == "allow"
    assert guard.filter is not None and guard.filter.sha256 == server.current().signed.sha256


def test_http_sdk_offline_and_bad_key(
    base_url: tuple[str, str], server: DeviceServer, known: list[Known]
) -> None:
    url, _ = base_url
    bad = DeviceGuard(
        HttpFilterSource(url, "ss_bad_key"),
        HttpEvaluator(url, "ss_bad_key"),
        server.public_key(),
        offline_action="warn",
    )
    d = bad.check_image(known[0].data)
    assert d.action == "warn" and "no verified filter" in d.reason
    port = _free_port()  # nothing listens there
    down = DeviceGuard(
        HttpFilterSource(f"http://127.0.0.1:{port}", "k", timeout_s=2),
        HttpEvaluator(f"http://127.0.0.1:{port}", "k", timeout_s=2),
        server.public_key(),
        offline_action="block",
    )
    assert down.check_image(known[0].data).action == "block"


def test_http_rate_limited_is_offline_decision(
    base_url: tuple[str, str], server: DeviceServer, known: list[Known]
) -> None:
    url, key = base_url
    server.limiter = TokenBucket(rate_per_s=0.001, burst=10)
    guard = DeviceGuard(
        HttpFilterSource(url, key),
        HttpEvaluator(url, key),
        server.public_key(),
        offline_action="warn",
    )
    assert guard.check_image(known[0].data).action == "block"  # 10 elements: the whole burst
    d = guard.check_image(known[0].data)
    assert d.action == "warn" and "could not run" in d.reason
