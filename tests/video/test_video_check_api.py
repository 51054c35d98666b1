"""``POST /v1/check`` with videos: short ones in the request, long ones as a job; bad input 4xx."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from api_support import auth
from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.auth import Role
from safestream.cli import cli
from safestream.store.db import Store
from safestream.store.models import CheckRow
from safestream.store.reviews import ReviewRepository
from safestream.store.service import KeyRepository
from video_support import encode, known_frame, other_frame, shots
from webhook_support import store_url

FPS = 10
KNOWN_SEED = 77
#: The known picture is on screen from X to Y seconds of the test video.
X, Y = 3, 6


def png(rgb: np.ndarray) -> bytes:  # type: ignore[type-arg]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def video_bytes(tmp: Path, name: str, seconds_before: int, seconds_after: int) -> bytes:
    """Filler, then the known picture from X to Y, then filler; H.264 in ``name``'s format."""
    before = [other_frame(300 + i) for i in range(seconds_before)]
    after = [other_frame(400 + i) for i in range(seconds_after)]
    frames = shots(before, 1, FPS) + shots([known_frame(KNOWN_SEED)], Y - X, FPS)
    frames += shots(after, 1, FPS)
    path = tmp / name
    encode(path, frames, fps=FPS)
    return path.read_bytes()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("api-videos")
    short = video_bytes(d, "short.mp4", X, 2)  # 8 s
    long = video_bytes(d, "long.mkv", X, 12)  # 18 s
    clean = d / "clean.mp4"
    encode(clean, shots([other_frame(500 + i) for i in range(4)], 1, FPS), fps=FPS)
    ts = d / "short.ts"
    encode(ts, shots([other_frame(600)], 1, FPS), fps=FPS)
    audio = d / "audio.ts"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("mp2", rate=48000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1152), dtype=np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 48000
        for _ in range(20):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return {
        "short": short,
        "long": long,
        "clean": clean.read_bytes(),
        "ts_tables_only": ts.read_bytes()[: 188 * 3],
        "audio": audio.read_bytes(),
        "truncated": short[: len(short) // 2],  # mp4: the index (moov) is at the end
        "known_png": png(known_frame(KNOWN_SEED)),
    }


@pytest.fixture
def upload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "uploads"
    monkeypatch.setenv("SAFESTREAM_UPLOAD_DIR", str(d))
    return d


def make_client(store: Store, **settings: object) -> TestClient:
    base: dict[str, object] = {"max_upload_bytes": 8 * 1024 * 1024, "refresh_interval_s": 0.05}
    return TestClient(create_app(store, settings=ServiceSettings(**{**base, **settings})))  # type: ignore[arg-type]


@pytest.fixture
def keys(store: Store) -> dict[Role, str]:
    repo = KeyRepository(store)
    return {role: repo.create(role.value, f"test {role.value}")[0] for role in Role}


def bank_known_image(client: TestClient, keys: dict[Role, str], png_data: bytes) -> None:
    curator = auth(keys[Role.CURATOR])
    h = client.post("/v1/hash", files={"file": ("k.png", png_data)}, headers=curator).json()
    assert client.post("/v1/banks", json={"name": "known"}, headers=curator).status_code == 201
    added = client.post(
        "/v1/banks/known/entries",
        json={"entries": [{"signal_type": "pdq", "value": h["pdq"], "external_id": "K1"}]},
        headers=curator,
    )
    assert added.status_code == 201
    client.app.state.safestream.engine.refresh()  # type: ignore[attr-defined]


def check_count(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(CheckRow)) or 0)


FORM = {
    "account_id": "acct-v",
    "ip_address": "198.51.100.9",
    "source_port": "40123",
    "client_timestamp": "2026-11-29T09:00:00+01:00",
    "surface": "upload",
}


@pytest.fixture
def client(store: Store, keys: dict[Role, str], upload_dir: Path) -> Iterator[TestClient]:
    with make_client(store, video_sync_max_s=10.0) as c:
        yield c


def test_short_video_checked_in_request(
    client: TestClient, keys: dict[Role, str], media: dict[str, bytes], store: Store
) -> None:
    bank_known_image(client, keys, media["known_png"])
    key = auth(keys[Role.INTEGRATOR])
    r = client.post(
        "/v1/check", files={"file": ("clip.bin", media["short"])}, data=FORM, headers=key
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "video" and body["outcome"] == "match" and body["verdict"] == "block"
    assert body["actions"][0] == "block"
    # The policy's actions ran as for an image: the review queue has the incident.
    [item] = ReviewRepository(store).list(account_id="acct-v")
    assert item.content_ids == [body["content_id"]]
    assert body["matches"][0]["bank"] == "known" and body["matches"][0]["external_id"] == "K1"
    times = [f["timestamp_s"] for f in body["frame_matches"]]
    assert times and all(X <= t <= Y + 1 for t in times)
    assert all(f["bank"] == "known" and f["distance_bits"] <= 31 for f in body["frame_matches"])
    signals = body["signals"]
    assert signals["kind"] == "video" and len(signals["sha1"]) == 40
    assert 7.5 <= signals["duration_s"] <= 8.5
    assert {"frame_number", "quality", "pdq", "timestamp_s"} <= set(signals["frames"][0])
    assert any("frame at" in reason for reason in body["reasons"])

    record = client.get(f"/v1/checks/{body['content_id']}", headers=key).json()
    assert record["outcome"] == "match" and record["signals"]["kind"] == "video"
    assert record["context"]["source_port"] == 40123
    assert record["context"]["ip_address"] == "198.51.100.9"
    assert record["context"]["client_timestamp"].startswith("2026-11-29T08:00:00")
    assert record["matches"][0]["external_id"] == "K1"

    clean = client.post("/v1/check", files={"file": ("c.mp4", media["clean"])}, headers=key)
    assert clean.status_code == 200
    assert clean.json()["outcome"] == "no_match" and clean.json()["frame_matches"] == []
    assert check_count(store) == 2

    # Images keep their answer: no video keys.
    image = client.post("/v1/check", files={"file": ("k.png", media["known_png"])}, headers=key)
    assert image.status_code == 200 and "kind" not in image.json()
    assert image.json()["outcome"] == "match" and image.json()["actions"] == body["actions"]


def test_long_video_is_a_job_that_the_worker_finishes(
    client: TestClient,
    keys: dict[Role, str],
    media: dict[str, bytes],
    store: Store,
    upload_dir: Path,
) -> None:
    bank_known_image(client, keys, media["known_png"])
    key = auth(keys[Role.INTEGRATOR])
    r = client.post("/v1/check", files={"file": ("v.mkv", media["long"])}, data=FORM, headers=key)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert r.headers["Location"] == accepted["location"] == f"/v1/jobs/{accepted['job']['id']}"
    assert accepted["job"]["kind"] == "video_check" and accepted["job"]["status"] == "queued"
    assert 17 <= accepted["duration_s"] <= 19
    waiting = list((upload_dir / "video-checks").iterdir())
    assert [p.read_bytes() == media["long"] for p in waiting] == [True]
    # No worker yet: the job waits, nothing is recorded.
    assert client.get(accepted["location"], headers=key).json()["status"] == "queued"
    assert check_count(store) == 0

    ran = CliRunner().invoke(cli, ["--database-url", store_url(store), "worker", "--once"])
    assert ran.exit_code == 0, ran.output
    job = client.get(accepted["location"], headers=key).json()
    assert job["status"] == "done", job
    result = job["result"]
    assert result["content_id"] == accepted["content_id"]
    assert result["outcome"] == "match" and result["verdict"] == "block"
    times = [f["timestamp_s"] for f in result["frame_matches"]]
    assert times and all(X <= t <= Y + 1 for t in times)
    assert list((upload_dir / "video-checks").iterdir()) == []  # bytes deleted
    record = client.get(f"/v1/checks/{accepted['content_id']}", headers=key).json()
    assert record["outcome"] == "match" and record["context"]["source_port"] == 40123
    assert record["context"]["account_id"] == "acct-v"
    assert check_count(store) == 1


def test_job_of_an_undecodable_video_dies_without_a_record(
    client: TestClient,
    keys: dict[Role, str],
    media: dict[str, bytes],
    store: Store,
    upload_dir: Path,
) -> None:
    """A transport stream cut after its tables: no duration, so a job; no frame, so it dies."""
    key = auth(keys[Role.INTEGRATOR])
    r = client.post("/v1/check", files={"file": ("z.ts", media["ts_tables_only"])}, headers=key)
    assert r.status_code == 202, r.text
    ran = CliRunner().invoke(cli, ["--database-url", store_url(store), "worker", "--once"])
    assert ran.exit_code == 0, ran.output
    job = client.get(r.json()["location"], headers=key).json()
    assert job["status"] == "dead" and "no decodable frame" in job["last_error"]
    assert list((upload_dir / "video-checks").iterdir()) == []
    assert check_count(store) == 0


@pytest.mark.parametrize(
    ("name", "status", "kind", "words"),
    [
        ("truncated", 422, "corrupt_video", "truncated or corrupt"),
        ("audio", 422, "no_video_stream", "no video stream"),
        ("text", 422, "not_an_image", "neither an image nor a video"),
    ],
)
def test_bad_video_uploads(
    client: TestClient,
    keys: dict[Role, str],
    media: dict[str, bytes],
    store: Store,
    upload_dir: Path,
    name: str,
    status: int,
    kind: str,
    words: str,
) -> None:
    data = (
        b"plain text that is neither an image nor a video\n" * 20 if name == "text" else media[name]
    )
    key = auth(keys[Role.INTEGRATOR])
    r = client.post("/v1/check", files={"file": ("x.mp4", data)}, data=FORM, headers=key)
    assert r.status_code == status, r.text
    assert r.json()["kind"] == kind and words in r.json()["detail"]
    assert check_count(store) == 0
    assert not (upload_dir / "video-checks").exists() or not any(
        (upload_dir / "video-checks").iterdir()
    )


def test_video_frames_over_pixel_limit_is_413(
    store: Store, keys: dict[Role, str], media: dict[str, bytes], upload_dir: Path
) -> None:
    with make_client(store, max_pixels=320 * 240 - 1) as c:
        r = c.post(
            "/v1/check",
            files={"file": ("v.mp4", media["short"])},
            headers=auth(keys[Role.INTEGRATOR]),
        )
    assert r.status_code == 413, r.text
    assert r.json()["kind"] == "video_too_large" and "320x240" in r.json()["detail"]
    assert check_count(store) == 0


def test_sync_limit_zero_queues_every_video(
    store: Store, keys: dict[Role, str], media: dict[str, bytes], upload_dir: Path
) -> None:
    with make_client(store, video_sync_max_s=0.0) as c:
        r = c.post(
            "/v1/check",
            files={"file": ("v.mp4", media["short"])},
            headers=auth(keys[Role.INTEGRATOR]),
        )
        assert r.status_code == 202, r.text
        # Only integrators (and admins) see video_check jobs.
        curator = c.get(r.json()["location"], headers=auth(keys[Role.CURATOR]))
        assert curator.status_code == 404


def test_openapi_describes_both_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/v1/check"]["post"]["responses"]
    ok = json.dumps(responses["200"])
    assert "CheckOut" in ok and "VideoCheckOut" in ok
    assert "VideoCheckAccepted" in json.dumps(responses["202"])
    assert "413" in responses and "422" in responses
    video = spec["components"]["schemas"]["VideoCheckOut"]["properties"]
    assert {"frame_matches", "videos", "kind"} <= set(video)
