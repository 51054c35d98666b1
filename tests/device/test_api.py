"""The device API: filter download, batched blinded evaluation, roles, rate limits,
and proof that the server receives, logs and stores nothing derived from content."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from api_support import auth
from device_support import UNRELATED_SEEDS, Known, jpeg
from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.auth import Role
from safestream.demo import synthetic_image
from safestream.device import DeviceGuard, DeviceServer, SignedFilter, oprf
from safestream.device.client import parse_evaluation
from safestream.device.filter import parse_signature
from safestream.device.keys import md5_key, pdq_segment_keys, sha256_key
from safestream.device.server import TokenBucket
from safestream.store.db import Store
from safestream.store.service import KeyRepository


@pytest.fixture
def app_client(store: Store, server: DeviceServer) -> Iterator[TestClient]:
    app = create_app(store, settings=ServiceSettings(refresh_interval_s=0.05))
    app.state.device_server = server
    with TestClient(app) as c:
        yield c


@pytest.fixture
def keys(store: Store) -> dict[Role, str]:
    repo = KeyRepository(store)
    return {role: repo.create(role.value, f"test {role.value}")[0] for role in Role}


class ClientSource:
    """The SDK's HTTP filter source, over the test client."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.key = client, key

    def fetch(self) -> SignedFilter:
        r = self.client.get("/v1/device/filter", headers=auth(self.key))
        assert r.status_code == 200, r.text
        return SignedFilter(r.content, parse_signature(r.headers["X-Filter-Signature"]))


class ClientEvaluator:
    """The SDK's HTTP evaluator over the test client; records every byte sent and received."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.key = client, key
        self.sent: list[bytes] = []
        self.bytes_exchanged = 0

    def evaluate(self, elements: Sequence[bytes]) -> tuple[list[bytes], str]:
        body = {"blinded": base64.b64encode(b"".join(elements)).decode()}
        r = self.client.post("/v1/device/evaluate", json=body, headers=auth(self.key))
        assert r.status_code == 200, r.text
        self.sent.append(r.request.content)
        self.bytes_exchanged += len(r.request.content) + len(r.content)
        return parse_evaluation(r.content, len(elements))


def _guard(
    client: TestClient, key: str, server: DeviceServer
) -> tuple[DeviceGuard, ClientEvaluator]:
    ev = ClientEvaluator(client, key)
    return DeviceGuard(ClientSource(client, key), ev, server.public_key()), ev


def test_end_to_end_over_http(
    app_client: TestClient, keys: dict[Role, str], server: DeviceServer, known: list[Known]
) -> None:
    guard, ev = _guard(app_client, keys[Role.INTEGRATOR], server)
    assert guard.check_image(known[0].data).action == "block"
    assert guard.check_image(jpeg(synthetic_image(UNRELATED_SEEDS[0]))).action == "allow"
    # One request per image, about 1 KiB of bodies each way together.
    assert len(ev.sent) == 2
    assert ev.bytes_exchanged / 2 <= 1024


def test_server_sees_and_keeps_nothing_derived_from_content(
    app_client: TestClient,
    keys: dict[Role, str],
    server: DeviceServer,
    known: list[Known],
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[bytes] = []
    original = server.evaluate

    def spy(elements: Sequence[bytes], *, device: str) -> list[bytes]:
        received.extend(elements)
        return original(elements, device=device)

    server.evaluate = spy  # type: ignore[method-assign]
    files_before = _files(server.directory)
    guard, ev = _guard(app_client, keys[Role.INTEGRATOR], server)
    k = known[1]
    caplog.set_level(logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        first = guard.check_image(k.data)
        second = guard.check_image(k.data)
    assert first.action == second.action == "block"

    from safestream.signals.hashing import hash_bytes

    h = hash_bytes(k.data, mode="fast")
    assert h.pdq is not None
    keys_ = [md5_key(h.md5), sha256_key(h.sha256), *pdq_segment_keys(h.pdq)]
    secrets_ = _derived_forms(keys_, [h.md5, h.sha256, h.pdq, k.pdq])

    # 1. What the server received is only blinded elements: valid group elements,
    #    none equal to the unblinded hash-to-group point of any key, fresh each time.
    assert len(received) == 2 * len(keys_)
    unblinded = {oprf.hash_to_group(key) for key in keys_}
    assert not unblinded & set(received)
    assert set(received[: len(keys_)]).isdisjoint(received[len(keys_) :])
    for e in received:
        oprf.check_element(e)
    # The request bodies hold nothing but the base64 of those elements.
    wire = b"".join(ev.sent)
    assert not any(s in wire for s in secrets_)

    # 2. The logs (messages and structured extras) hold nothing derived from content.
    log_text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records).encode()
    assert caplog.records, "expected the check to log something at DEBUG"
    assert not any(s in log_text for s in secrets_)

    # 3. Nothing was stored: no new or changed files, no database row mentions it.
    assert _files(server.directory) == files_before
    assert not any(s in _dump_database(store) for s in secrets_)


def _derived_forms(keys_: list[bytes], hexes: list[str]) -> list[bytes]:
    forms: list[bytes] = []
    for key in keys_:
        payload = key.split(b"/")[-1] if not key.startswith(b"ss/pdq") else key[-4:]
        forms += [key, key.hex().encode(), base64.b64encode(key)]
        if len(payload) >= 4:
            forms += [payload.hex().encode()]
    for value in hexes:
        forms += [value.encode(), base64.b64encode(bytes.fromhex(value))]
    return forms


def _files(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()}


def _dump_database(store: Store) -> bytes:
    meta = MetaData()
    meta.reflect(store.engine)
    out = []
    with store.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                out.append(repr(tuple(row)))
    return "\n".join(out).encode()


def test_roles(app_client: TestClient, keys: dict[Role, str]) -> None:
    spec = app_client.get("/openapi.json").json()
    for path in ("/v1/device/filter", "/v1/device/filter/info", "/v1/device/evaluate"):
        for op in spec["paths"][path].values():
            assert op["x-roles"] == ["admin", "integrator"]
    body = {"blinded": base64.b64encode(oprf.blind(b"x").element).decode()}
    for role, key in keys.items():
        allowed = role in (Role.ADMIN, Role.INTEGRATOR)
        for method, url, kw in (
            ("GET", "/v1/device/filter", {}),
            ("GET", "/v1/device/filter/info", {}),
            ("POST", "/v1/device/evaluate", {"json": body}),
        ):
            r = app_client.request(method, url, headers=auth(key), **kw)
            assert r.status_code == (200 if allowed else 403), (role, url, r.text)
    assert app_client.get("/v1/device/filter").status_code == 401


def test_filter_headers_and_etag(
    app_client: TestClient, keys: dict[Role, str], server: DeviceServer
) -> None:
    h = auth(keys[Role.INTEGRATOR])
    r = app_client.get("/v1/device/filter", headers=h)
    assert r.headers["X-Filter-Version"] == "1"
    assert r.headers["X-OPRF-Key-Id"] == server.oprf_key_id()
    info = app_client.get("/v1/device/filter/info", headers=h).json()
    assert info["sha256"] == r.headers["X-Filter-SHA256"]
    assert info["public_key"] == server.public_key().hex()
    again = app_client.get("/v1/device/filter", headers={**h, "If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and not again.content


@pytest.mark.parametrize(
    "blinded",
    [
        "not base64!",
        base64.b64encode(b"\x01" * 31).decode(),
        base64.b64encode(bytes(32)).decode(),  # identity
        base64.b64encode(b"\xff" * 32).decode(),  # not canonical
        base64.b64encode(b"\x00" * 32 * 65).decode(),  # too many
    ],
)
def test_bad_evaluation_input_is_4xx(
    app_client: TestClient, keys: dict[Role, str], blinded: str
) -> None:
    r = app_client.post(
        "/v1/device/evaluate", json={"blinded": blinded}, headers=auth(keys[Role.INTEGRATOR])
    )
    assert 400 <= r.status_code < 500, r.text


def test_rate_limit_per_device_key(
    app_client: TestClient, keys: dict[Role, str], server: DeviceServer, store: Store
) -> None:
    server.limiter = TokenBucket(rate_per_s=0.001, burst=20)
    body = {
        "blinded": base64.b64encode(
            b"".join(oprf.blind(b"%d" % i).element for i in range(10))
        ).decode()
    }
    first = auth(keys[Role.INTEGRATOR])
    assert app_client.post("/v1/device/evaluate", json=body, headers=first).status_code == 200
    assert app_client.post("/v1/device/evaluate", json=body, headers=first).status_code == 200
    limited = app_client.post("/v1/device/evaluate", json=body, headers=first)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    # Another device key has its own budget.
    other, _ = KeyRepository(store).create("integrator", "another device")
    assert app_client.post("/v1/device/evaluate", json=body, headers=auth(other)).status_code == 200


def test_token_bucket_refills() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=20)
    bucket.take("d", 20, now=0.0)
    from safestream.device import RateLimitedError

    with pytest.raises(RateLimitedError) as err:
        bucket.take("d", 10, now=0.5)
    assert err.value.retry_after_s == pytest.approx(0.5)
    bucket.take("d", 10, now=1.0)


def test_no_filter_yet_is_404(store: Store, tmp_path: Path, keys: dict[Role, str]) -> None:
    app = create_app(store, settings=ServiceSettings(refresh_interval_s=0.05))
    app.state.device_server = DeviceServer(tmp_path / "none")
    with TestClient(app) as c:
        r = c.get("/v1/device/filter", headers=auth(keys[Role.ADMIN]))
        assert r.status_code == 404 and "publish" in r.json()["detail"]
