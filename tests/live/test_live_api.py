"""``/v1/streams``: start, list, read and stop live monitoring over real local sources."""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api_support import auth
from safestream.actions.webhook import JOB_KIND
from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.cases.service import CaseService
from safestream.engine.video import add_video
from safestream.errors import ConfigError
from safestream.live.allow import SourcePolicy
from safestream.signals.video import hash_video
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from safestream.store.service import KeyRepository
from video_support import encode, known_frame, other_frame, shots

FPS = 10
WEBHOOK_SECRET = "live-webhook-secret-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    filler = [other_frame(1500 + i) for i in range(4)]
    known = [known_frame(i) for i in (81, 82)]
    encode(root / "known.mp4", shots(known, 1, FPS), fps=FPS)
    # Banked pictures shown from second 1 to second 3; 2 s GOP.
    encode(
        root / "bad.ts",
        shots(filler[:1] + known + filler[1:3], 1, FPS),
        fps=FPS,
        gop=2 * FPS,
        container_format="mpegts",
    )
    encode(root / "long.ts", shots(filler * 10, 1, FPS), fps=FPS, container_format="mpegts")
    (root / "garbage.ts").write_bytes(bytes(range(256)) * 400)
    return root


@pytest.fixture
def http_media(media: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the media folder."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(media))

    class Quiet(handler.func):  # type: ignore[name-defined,misc]
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(media)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def app_client(
    store: Store, media: Path, http_media: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("SAFESTREAM_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("SAFESTREAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    repo = BankRepository(store)
    repo.create_bank("live-api", source="test")
    add_video(repo, "live-api", hash_video(media / "known.mp4"), external_id="clip-api")
    settings = ServiceSettings(
        refresh_interval_s=0.05,
        live_allowed_sources=(f"{http_media}/", "rtmp://127.0.0.1:1/live/"),
        live_file_root=str(media),
    )
    with TestClient(create_app(store, settings=settings)) as c:
        yield c


@pytest.fixture
def keys(store: Store) -> dict[str, str]:
    repo = KeyRepository(store)
    return {r: repo.create(r, f"live {r}")[0] for r in ("admin", "integrator", "reviewer")}


def _wait(client: TestClient, key: str, stream_id: str, done: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/streams/{stream_id}", headers=auth(key)).json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_nothing_is_allowed_by_default(store: Store, keys: dict[str, str]) -> None:
    key = keys["integrator"]
    with TestClient(create_app(store, settings=ServiceSettings())) as client:
        _refused_by_default(client, key)


def _refused_by_default(client: TestClient, key: str) -> None:
    r = client.post("/v1/streams", json={"source": "/etc/passwd"}, headers=auth(key))
    assert r.status_code == 403 and "SAFESTREAM_LIVE_FILE_ROOT" in r.json()["detail"]
    r = client.post(
        "/v1/streams", json={"source": "http://169.254.169.254/latest"}, headers=auth(key)
    )
    assert r.status_code == 403 and "SAFESTREAM_LIVE_ALLOWED_SOURCES" in r.json()["detail"]
    assert client.get("/v1/streams", headers=auth(key)).json() == {"streams": []}


def test_banked_stream_through_the_api_ends_opens_a_case_and_notifies(
    app_client: TestClient, keys: dict[str, str], store: Store
) -> None:
    key = keys["integrator"]
    body = {
        "source": "bad.ts",
        "stream_id": "cam-7",
        "account_id": "acct-api",
        "username": "live-user",
        "profile_url": "https://example.test/live-user",
        "ip_address": "2001:db8::7",
        "source_port": 50505,
        "sample_fps": 1,
    }
    r = app_client.post("/v1/streams", json=body, headers=auth(key))
    assert r.status_code == 201, r.text
    assert r.json()["stream_id"] == "cam-7" and r.json()["state"] in ("running", "ended")
    again = app_client.post("/v1/streams", json=body, headers=auth(key))
    assert again.status_code == 409 and "already monitored" in again.json()["detail"]
    # Ended by end_stream; open_case's result shows once its case is written.
    out = _wait(
        app_client,
        key,
        "cam-7",
        lambda b: (
            b["state"] != "running"
            and len(b["actions"]) == 2
            and all("result" in a for a in b["actions"])
        ),
    )
    assert out["state"] == "ended" and out["ended_by"] == "end_stream", out
    fired = {a["action"]: a for a in out["actions"]}
    assert set(fired) == {"end_stream", "open_case"}
    assert 1.0 <= fired["open_case"]["sample_times_s"][0] <= 4.0
    assert out["metrics"]["matches"] >= 1 and out["metrics"]["latency_p95_ms"] is not None
    assert out["metrics"]["frames_decoded"] > 0 and "packets_unreferenced" in out["metrics"]
    assert out["metrics"]["video_streams"] == 1
    assert out["context"]["source_port"] == 50505
    content_id = fired["open_case"]["result"]["case"]["content_id"]

    listing = app_client.get("/v1/streams", headers=auth(keys["admin"])).json()["streams"]
    assert [s["stream_id"] for s in listing] == ["cam-7"]

    # Each action went to the action runner: a signed webhook delivery is queued.
    recent = JobRepository(store).recent(kinds=(JOB_KIND,))
    jobs = {j.payload["stream"]["action"]: j for j in recent}
    assert set(jobs) == {"end_stream", "open_case"}
    payload = jobs["open_case"].payload
    assert payload["event"] == "live.action" and payload["verdict"] == "match"
    assert payload["stream"]["stream_id"] == "cam-7" and payload["stream"]["sample_times_s"]
    assert payload["content_id"] == content_id and payload["rule"] == "live:cam-7"
    assert payload["context"]["surface"] == "live"
    assert payload["context"]["source_port"] == 50505
    assert payload["matches"][0]["bank"] == "live-api"

    cases = CaseService(store)
    assert cases.sync() == 1
    (case,) = [c for c in cases.list() if c.account_id == "acct-api"]
    (event,) = cases.to_dict(case)["events"]
    assert event["kind"] == "live" and event["content_id"] == content_id
    assert event["record"]["context"]["ip_address"] == "2001:db8::7"
    assert event["record"]["context"]["source_port"] == 50505


def test_http_source_delete_and_failures(
    app_client: TestClient, keys: dict[str, str], http_media: str
) -> None:
    key = keys["admin"]
    r = app_client.post(
        "/v1/streams",
        json={"source": f"{http_media}/long.ts", "stream_id": "web", "actions": ["warn"]},
        headers=auth(key),
    )
    assert r.status_code == 201, r.text
    _wait(app_client, key, "web", lambda b: b["metrics"]["results"] >= 2)
    stopped = app_client.delete("/v1/streams/web", headers=auth(key))
    assert stopped.status_code == 200
    assert stopped.json()["ended_by"] == "stopped"
    assert stopped.json()["state"] in ("stopping", "ended")
    assert stopped.json()["metrics"]["results"] >= 2
    assert app_client.delete("/v1/streams/nope", headers=auth(key)).status_code == 404
    assert app_client.get("/v1/streams/nope", headers=auth(key)).status_code == 404

    # A corrupt file fails: the error is in the stream's record, not a 500.
    r = app_client.post(
        "/v1/streams", json={"source": "garbage.ts", "stream_id": "junk"}, headers=auth(key)
    )
    assert r.status_code == 201
    out = _wait(app_client, key, "junk", lambda b: b["state"] != "running")
    assert out["state"] == "failed" and out["error"], out
    # An allowed URL where nothing listens: retried, each failure reported.
    r = app_client.post(
        "/v1/streams",
        json={"source": "rtmp://127.0.0.1:1/live/x", "stream_id": "down"},
        headers=auth(key),
    )
    assert r.status_code == 201
    out = _wait(app_client, key, "down", lambda b: b["last_error"] or b["error"])
    assert "cannot open" in (out["last_error"] or out["error"]), out
    assert app_client.delete("/v1/streams/down", headers=auth(key)).status_code == 200


#: (payload, status, text the answer must contain): each refused, nothing started.
BAD: list[tuple[dict[str, Any], int, str]] = [
    ({}, 422, "source"),
    ({"source": "bad.ts", "sample_fps": 0}, 422, "sample_fps"),
    ({"source": "bad.ts", "actions": ["explode"]}, 422, "actions"),
    ({"source": "bad.ts", "ip_address": "not-an-ip"}, 422, "ip_address"),
    ({"source": "bad.ts", "stream_id": "../x"}, 422, "stream_id"),
    ({"source": "bad.ts", "source_port": 70000}, 422, "source_port"),
    ({"source": "bad.ts", "extra": 1}, 422, "extra"),
    ({"source": "file:///etc/passwd"}, 422, "scheme"),
    ({"source": "gopher://127.0.0.1/x"}, 422, "scheme"),
    ({"source": "concat:/etc/passwd|/etc/hosts"}, 422, "neither a URL"),
    ({"source": "missing.ts"}, 422, "no such file"),
    ({"source": "../../etc/passwd"}, 403, "outside"),
    ({"source": "/etc/passwd"}, 403, "outside"),
    ({"source": "link.ts"}, 403, "outside"),
    ({"source": "http://127.0.0.1.evil.test/x"}, 403, "allow-list"),
    ({"source": "rtmp://127.0.0.1:2/live/x"}, 403, "allow-list"),
    ({"source": "rtmp://127.0.0.1:1/other/x"}, 403, "allow-list"),
    ({"source": "rtmp://127.0.0.1:1/live/../admin"}, 422, "segments"),
]


def test_bad_payloads_and_forbidden_sources(
    app_client: TestClient, keys: dict[str, str], media: Path
) -> None:
    (media / "link.ts").symlink_to("/etc/hostname")
    for payload, status, needle in BAD:
        r = app_client.post("/v1/streams", json=payload, headers=auth(keys["integrator"]))
        assert r.status_code == status, (payload, r.text)
        assert needle in r.text, (payload, r.text)
    assert app_client.get("/v1/streams", headers=auth(keys["admin"])).json() == {"streams": []}


def test_roles(app_client: TestClient, keys: dict[str, str]) -> None:
    r = app_client.post("/v1/streams", json={"source": "bad.ts"}, headers=auth(keys["reviewer"]))
    assert r.status_code == 403 and "integrator" in r.json()["detail"]
    assert app_client.get("/v1/streams").status_code == 401


def test_bad_allow_list_entries_stop_start_up() -> None:
    for bad in ("ftp://host", "rtmp://", "rtmp://user:pw@host", "rtmp://host:99999"):
        with pytest.raises(ConfigError, match="SAFESTREAM_LIVE_ALLOWED_SOURCES"):
            SourcePolicy.parse((bad,), None)
    with pytest.raises(ConfigError, match="absolute"):
        SourcePolicy.parse((), "relative/dir")


def test_open_errors_never_show_a_password() -> None:
    from safestream.live import Source, StreamError

    with pytest.raises(StreamError) as info:
        Source(url="rtmp://bob:s3cret@127.0.0.1:1/live/x").open()
    assert "cannot open" in str(info.value) and "s3cret" not in str(info.value)


def test_allowed_hls_plays_but_cannot_reach_local_files(
    media: Path, http_media: str, tmp_path: Path
) -> None:
    """FFmpeg 8's HLS demuxer refuses such a segment too; the protocol list is a second guard."""
    from safestream.live import Sampler, StreamError

    encode(
        media / "index.m3u8",
        shots([other_frame(1800 + i) for i in range(4)], 1, FPS),
        fps=FPS,
        container_format="hls",
    )
    secret = tmp_path / "secret.ts"
    encode(secret, shots([other_frame(1900)], 2, FPS), fps=FPS, container_format="mpegts")
    (media / "evil.m3u8").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile://{secret}\n#EXT-X-ENDLIST\n"
    )
    policy = SourcePolicy.parse((f"{http_media}/",), None)
    container = policy.source(f"{http_media}/index.m3u8").open()
    try:
        assert len(list(Sampler(1.0).samples(container))) == 4
    finally:
        container.close()
    with pytest.raises(StreamError, match="cannot open"):
        policy.source(f"{http_media}/evil.m3u8").open()


def test_video_stream_settings_come_from_the_environment(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safestream.live.ingest import MAX_LIVE_VIDEO_STREAMS

    defaults = ServiceSettings()
    assert (defaults.live_video_streams, defaults.live_max_video_streams) == (
        "all",
        MAX_LIVE_VIDEO_STREAMS,
    )
    assert ServiceSettings.from_env().live_hwaccel is None
    assert ServiceSettings.from_env().live_workers is None  # the usable cores
    monkeypatch.setenv("SAFESTREAM_LIVE_VIDEO_STREAMS", "preferred")
    monkeypatch.setenv("SAFESTREAM_LIVE_MAX_VIDEO_STREAMS", "2")
    monkeypatch.setenv("SAFESTREAM_LIVE_HWACCEL", " cuda ")
    monkeypatch.setenv("SAFESTREAM_LIVE_WORKERS", "3")
    settings = ServiceSettings.from_env()
    assert (settings.live_video_streams, settings.live_max_video_streams) == ("preferred", 2)
    assert settings.live_hwaccel == "cuda"
    assert settings.live_workers == 3
    with TestClient(create_app(store, settings=settings)) as client:
        from safestream.api.routes_live import LiveService

        live = client.app.state.safestream_live  # type: ignore[attr-defined]
        assert isinstance(live, LiveService)
        monitor = live._ensure()
        assert (monitor.video_streams, monitor.max_video_streams) == ("preferred", 2)
        assert len(monitor.pool._threads) == 3
    with TestClient(create_app(store, settings=ServiceSettings())) as client:
        monitor = client.app.state.safestream_live._ensure()  # type: ignore[attr-defined]
        assert len(monitor.pool._threads) == len(os.sched_getaffinity(0))
    for name, bad, message in (
        ("SAFESTREAM_LIVE_WORKERS", "0", "must be at least 1, got 0"),
        ("SAFESTREAM_LIVE_WORKERS", "two", "must be an integer, got 'two'"),
        ("SAFESTREAM_LIVE_VIDEO_STREAMS", "first", "must be all or preferred, got 'first'"),
        ("SAFESTREAM_LIVE_MAX_VIDEO_STREAMS", "0", "must be at least 1, got 0"),
        ("SAFESTREAM_LIVE_MAX_VIDEO_STREAMS", "65", "must be at most 64, got 65"),
    ):
        with monkeypatch.context() as m:
            m.setenv(name, bad)
            with pytest.raises(ConfigError, match=message):
                ServiceSettings.from_env()


def test_streams_decode_on_the_configured_device_or_fail_clearly(
    store: Store, media: Path, keys: dict[str, str]
) -> None:
    """SAFESTREAM_LIVE_HWACCEL reaches every source the API opens; a device type this
    FFmpeg lacks fails the stream (its record says why), never the request."""
    settings = ServiceSettings(live_file_root=str(media), live_hwaccel="warp-drive")
    key = keys["integrator"]
    with TestClient(create_app(store, settings=settings)) as client:
        r = client.post(
            "/v1/streams", json={"source": "bad.ts", "stream_id": "hw"}, headers=auth(key)
        )
        assert r.status_code == 201, r.text
        out = _wait(client, key, "hw", lambda b: b["state"] != "running")
    assert out["state"] == "failed", out
    assert "hardware decoding 'warp-drive' is not in this FFmpeg build" in out["error"]


def test_every_rendition_of_an_hls_master_playlist_is_sampled(media: Path, http_media: str) -> None:
    """An HLS master playlist's renditions are a source's video streams: a picture shown
    only in the small rendition (players start on the large one) is sampled too."""
    import threading

    from safestream.live import Sampler, SourceSampler
    from safestream.signals.pdq import pdq_from_rgb

    picture = known_frame(85)
    large = shots([other_frame(1950 + i, 640, 360) for i in range(4)], 1, FPS)
    small = shots([other_frame(1960), other_frame(1961), picture, picture], 1, FPS)
    encode(media / "large.m3u8", large, fps=FPS, container_format="hls", gop=2 * FPS)
    encode(media / "small.m3u8", small, fps=FPS, container_format="hls", gop=2 * FPS)
    (media / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360\nlarge.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x240\nsmall.m3u8\n"
    )
    container = (
        SourcePolicy.parse((f"{http_media}/",), None).source(f"{http_media}/master.m3u8").open()
    )
    source = SourceSampler(lambda: Sampler(1.0))
    try:
        widths = {int(s.index): int(s.width) for s in container.streams.video}
        samples = [
            (s.stream_index, s.stream_time_s, s.pdq()[0])
            for s in source.samples(container, stop=threading.Event())
        ]
    finally:
        container.close()
    assert sorted(widths.values()) == [320, 640]
    assert source.samplers[0].stream_index == max(widths, key=widths.__getitem__)
    (small_index,) = [i for i, w in widths.items() if w == 320]
    assert {i for i, _, _ in samples} == set(widths)
    known = pdq_from_rgb(picture)[0]

    def bits(h: str) -> int:
        return bin(int(h, 16) ^ int(known, 16)).count("1")

    shown = [bits(h) for i, t, h in samples if i == small_index and t >= 2.0]
    assert len(shown) == 2 and max(shown) <= 16, shown
    assert min(bits(h) for i, _, h in samples if i != small_index) > 60
