"""Check, hash, lookup and check records over HTTP; bad payloads get 4xx."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from fastapi.testclient import TestClient

from api_support import auth
from safestream.auth import Role
from safestream.demo import synthetic_image


def png_bytes(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    buf = io.BytesIO()
    synthetic_image(seed, size).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels (never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def banked(client: TestClient, role_keys: dict[Role, str]) -> str:
    """A bank holding image 1's PDQ; returns that PDQ."""
    curator = auth(role_keys[Role.CURATOR])
    h = client.post("/v1/hash", files={"file": ("a.png", png_bytes(1))}, headers=curator).json()
    assert client.post("/v1/banks", json={"name": "known"}, headers=curator).status_code == 201
    added = client.post(
        "/v1/banks/known/entries",
        json={"entries": [{"signal_type": "pdq", "value": h["pdq"], "external_id": "E1"}]},
        headers=curator,
    )
    assert added.status_code == 201
    return str(h["pdq"])


def test_check_match_blocks_and_records_context(
    client: TestClient, role_keys: dict[Role, str], banked: str
) -> None:
    key = auth(role_keys[Role.INTEGRATOR])
    client.app.state.safestream.engine.refresh()  # type: ignore[attr-defined]
    form = {
        "account_id": "acct-9",
        "username": "someone",
        "profile_url": "https://example.com/u/someone",
        "ip_address": "2001:db8::1",
        "source_port": "51234",
        "client_timestamp": "2026-11-29T10:00:00+01:00",
        "surface": "chat",
    }
    r = client.post("/v1/check", files={"file": ("x.png", png_bytes(1))}, data=form, headers=key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "block" and body["outcome"] == "match"
    assert body["actions"] == ["block", "enqueue_review"]
    assert body["matches"][0]["external_id"] == "E1"
    record = client.get(f"/v1/checks/{body['content_id']}", headers=key).json()
    assert record["context"]["source_port"] == 51234
    assert record["context"]["ip_address"] == "2001:db8::1"
    assert record["context"]["client_timestamp"] == "2026-11-29T09:00:00+00:00"
    assert record["outcome"] == "match"
    unrelated = client.post("/v1/check", files={"file": ("y.png", png_bytes(2))}, headers=key)
    assert unrelated.json()["verdict"] == "allow"


def test_new_entry_matched_within_refresh_interval(
    client: TestClient, role_keys: dict[Role, str]
) -> None:
    import time

    curator, integrator = auth(role_keys[Role.CURATOR]), auth(role_keys[Role.INTEGRATOR])
    client.post("/v1/banks", json={"name": "b"}, headers=curator)
    pdq = client.post("/v1/hash", files={"file": ("a.png", png_bytes(7))}, headers=curator).json()[
        "pdq"
    ]
    client.post(
        "/v1/banks/b/entries",
        json={"entries": [{"signal_type": "pdq", "value": pdq}]},
        headers=curator,
    )
    deadline = time.monotonic() + 5
    found = False
    while time.monotonic() < deadline and not found:
        r = client.post(
            "/v1/lookup",
            json={"hashes": [{"signal_type": "pdq", "value": pdq}]},
            headers=integrator,
        )
        found = bool(r.json()["results"][0]["matches"])
        time.sleep(0.02)
    assert found, "the refresh loop never picked up the new entry"


def test_lookup_many_and_errors(
    client: TestClient, role_keys: dict[Role, str], banked: str
) -> None:
    key = auth(role_keys[Role.INTEGRATOR])
    client.app.state.safestream.engine.refresh()  # type: ignore[attr-defined]
    near = f"{int(banked, 16) ^ 0b111:064x}"
    r = client.post(
        "/v1/lookup",
        json={
            "hashes": [
                {"signal_type": "pdq", "value": near},
                {"signal_type": "md5", "value": "0" * 32},
            ]
        },
        headers=key,
    )
    assert r.status_code == 200
    first, second = r.json()["results"]
    assert first["matches"][0]["distance_bits"] == 3 and second["matches"] == []
    bad = client.post(
        "/v1/lookup", json={"hashes": [{"signal_type": "pdq", "value": "abc"}]}, headers=key
    )
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("hashes[0]: pdq value must be 64 hex")
    assert client.post("/v1/lookup", json={"hashes": []}, headers=key).status_code == 422
    assert (
        client.post(
            "/v1/lookup",
            json={"hashes": [{"signal_type": "pdq", "value": near, "x": 1}]},
            headers=key,
        ).status_code
        == 422
    )
    unknown = client.post(
        "/v1/lookup", json={"hashes": [{"signal_type": "photodna", "value": "00"}]}, headers=key
    )
    assert unknown.status_code == 400 and "unknown signal type" in unknown.json()["detail"]
    too_many = client.post(
        "/v1/lookup",
        json={"hashes": [{"signal_type": "md5", "value": "0" * 32}] * 1001},
        headers=key,
    )
    assert too_many.status_code == 400


@pytest.mark.parametrize(
    ("payload", "status", "kind"),
    [
        (b"", 422, "empty_file"),
        (b"plain text, not an image", 422, "not_an_image"),
        ("truncated", 422, "corrupt_image"),
        ("bomb", 413, "decompression_bomb"),
    ],
)
def test_hostile_uploads(
    client: TestClient, role_keys: dict[Role, str], payload: bytes | str, status: int, kind: str
) -> None:
    key = auth(role_keys[Role.INTEGRATOR])
    if payload == "truncated":
        data = png_bytes(3)[:400]
    elif payload == "bomb":
        data = bomb_png(30_000, 30_000)
    else:
        assert isinstance(payload, bytes)
        data = payload
    for route in ("/v1/check", "/v1/hash"):
        r = client.post(route, files={"file": ("f.jpg", data)}, headers=key)
        assert r.status_code == status, (route, r.text)
        assert r.json()["kind"] == kind
    # nothing was recorded for a refused upload, and the service still works
    ok = client.post("/v1/check", files={"file": ("ok.png", png_bytes(4))}, headers=key)
    assert ok.status_code == 200


def test_upload_over_limit_is_413(client: TestClient, role_keys: dict[Role, str]) -> None:
    key = auth(role_keys[Role.INTEGRATOR])
    big = b"\x00" * (3 * 1024 * 1024)
    r = client.post("/v1/check", files={"file": ("big.png", big)}, headers=key)
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value", "status", "fragment"),
    [
        ("ip_address", "999.1.1.1", 400, "not an IPv4 or IPv6"),
        ("source_port", "70000", 422, ""),
        ("source_port", "http", 422, ""),
        ("client_timestamp", "2026-11-29T10:00:00", 400, "time zone"),
        ("client_timestamp", "yesterday", 422, ""),
        ("surface", "telepathy", 422, ""),
    ],
)
def test_bad_context_fields(
    client: TestClient,
    role_keys: dict[Role, str],
    field: str,
    value: str,
    status: int,
    fragment: str,
) -> None:
    key = auth(role_keys[Role.INTEGRATOR])
    r = client.post(
        "/v1/check", files={"file": ("a.png", png_bytes(1))}, data={field: value}, headers=key
    )
    assert r.status_code == status, r.text
    assert fragment in str(r.json()["detail"])


def test_check_without_file(client: TestClient, role_keys: dict[Role, str]) -> None:
    r = client.post("/v1/check", data={"account_id": "a"}, headers=auth(role_keys[Role.INTEGRATOR]))
    assert r.status_code == 422


def test_health_ready_metrics(client: TestClient, role_keys: dict[Role, str], banked: str) -> None:
    assert client.get("/v1/health").json() == {"status": "ok"}
    ready = client.get("/v1/ready")
    assert ready.status_code == 200 and ready.json()["database"] is True
    key = auth(role_keys[Role.INTEGRATOR])
    client.app.state.safestream.engine.refresh()  # type: ignore[attr-defined]
    client.post("/v1/check", files={"file": ("x.png", png_bytes(1))}, headers=key)
    text = client.get("/metrics", headers=auth(role_keys[Role.AUDITOR])).text
    assert 'safestream_matches_total{bank="known",signal_type="pdq"} 1.0' in text
    assert 'safestream_index_entries{signal_type="pdq"} 1.0' in text
    assert 'safestream_http_requests_total{method="POST",route="/v1/check",status="200"}' in text
    assert "safestream_http_request_seconds_bucket" in text
