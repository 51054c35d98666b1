"""Files with several video streams: every stream is checked, the one players pick first.

Before, only the file's first video stream was hashed. A crafted MP4 whose first track
is a small decoy and whose second track (flagged default, as players and the ``ffmpeg``
program pick it) holds a banked sequence passed the check. Synthetic pictures only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api_support import auth
from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.banks.formats import HashRecord
from safestream.engine import Engine
from safestream.engine.video import check_video, match_video
from safestream.signals.pdq import pdq_from_rgb
from safestream.signals.video import (
    MAX_VIDEO_STREAMS,
    TooManyVideoStreamsError,
    hash_video,
    probe_video,
)
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from safestream.store.service import KeyRepository
from video_support import (
    encode,
    encode_tracks,
    engine_with_known_video,
    known_frame,
    other_frame,
    shots,
)

FPS = 10
KNOWN = [known_frame(i) for i in (61, 62, 63)]
DECOY = [np.full((64, 64, 3), 128, np.uint8)] * (3 * FPS)


def tracks(
    path: Path,
    *streams: list[np.ndarray],
    default: int | None = None,
    container_format: str = "mp4",
) -> Path:
    return encode_tracks(
        path, *streams, fps=FPS, default=default, container_format=container_format
    )


@pytest.fixture
def engine(repo: BankRepository, tmp_path: Path) -> Engine:
    return engine_with_known_video(repo, tmp_path, KNOWN, fps=FPS)


def test_the_track_players_pick_is_hashed_first(tmp_path: Path) -> None:
    clip = tracks(tmp_path / "two.mp4", DECOY, shots(KNOWN, 1, FPS), default=1)
    hashes = hash_video(clip)
    assert (hashes.stream_index, hashes.width, hashes.height) == (1, 320, 240)
    [decoy] = hashes.other_streams
    assert (decoy.stream_index, decoy.width, decoy.frames_sampled) == (0, 64, 3)
    assert decoy.md5 == hashes.md5 and decoy.sha1 == hashes.sha1
    as_dict = hashes.to_dict()
    assert as_dict["stream_index"] == 1 and as_dict["other_streams"][0]["stream_index"] == 0
    probe = probe_video(clip)
    assert (probe.width, probe.height) == (320, 240)


@pytest.mark.parametrize("default", [None, 0, 1], ids=["no-flag", "decoy-default", "real-default"])
def test_a_banked_sequence_in_any_track_matches(
    engine: Engine, tmp_path: Path, default: int | None
) -> None:
    clip = tracks(tmp_path / "two.mp4", DECOY, shots(KNOWN, 1, FPS), default=default)
    result = check_video(engine, hash_video(clip))
    assert result.verdict.matched, result.verdict.reasons
    [video] = [v for v in result.videos if v.matched]
    assert video.stream_index == 1 and video.external_id == "clip-1"
    [named] = match_video(engine, hash_video(clip))
    assert named.matched and named.stream_index == 1


def test_a_banked_image_in_a_second_track_is_a_frame_match(
    repo: BankRepository, tmp_path: Path
) -> None:
    picture = known_frame(64)
    repo.create_bank("known", source="test")
    pdq, _ = pdq_from_rgb(picture)
    repo.add_entries("known", [HashRecord("pdq", pdq, "K1", None, ())])
    clip = tracks(
        tmp_path / "two.mp4",
        shots([other_frame(5)], 3, FPS),
        shots([other_frame(6), picture, other_frame(7)], 1, FPS),
        default=0,
    )
    result = check_video(Engine(repo), hash_video(clip))
    assert result.verdict.matched
    [frame] = result.frame_matches
    assert frame.stream_index == 1 and 1.0 <= frame.timestamp_s < 2.0
    assert frame.to_dict()["stream_index"] == 1
    assert any("of video stream 1" in r for r in result.verdict.reasons)


def test_a_single_track_file_is_unchanged(engine: Engine, tmp_path: Path) -> None:
    clip = tmp_path / "one.mp4"
    encode(clip, shots([other_frame(9)], 2, FPS), fps=FPS)
    hashes = hash_video(clip)
    assert hashes.stream_index == 0 and hashes.other_streams == ()
    assert hashes.to_dict()["other_streams"] == []
    assert not check_video(engine, hashes).verdict.matched


def many_tracks(tmp_path: Path) -> Path:
    small = [np.full((16, 16, 3), 40 * k, np.uint8) for k in range(3)]
    return tracks(tmp_path / "many.mp4", *([small] * (MAX_VIDEO_STREAMS + 1)))


def test_more_tracks_than_the_limit_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TooManyVideoStreamsError, match=f"at most {MAX_VIDEO_STREAMS}"):
        hash_video(many_tracks(tmp_path))


@pytest.fixture
def client(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SAFESTREAM_UPLOAD_DIR", str(tmp_path / "uploads"))
    settings = ServiceSettings(max_upload_bytes=8 * 1024 * 1024, refresh_interval_s=0.05)  # type: ignore[call-arg]
    with TestClient(create_app(store, settings=settings)) as c:
        yield c


def test_the_api_checks_every_track_and_refuses_too_many(
    client: TestClient, store: Store, engine: Engine, tmp_path: Path
) -> None:
    key = auth(KeyRepository(store).create("integrator", "test")[0])
    client.app.state.safestream.engine.refresh()  # type: ignore[attr-defined]
    clip = tracks(tmp_path / "two.mp4", DECOY, shots(KNOWN, 1, FPS), default=0)
    r = client.post("/v1/check", files={"file": ("v.mp4", clip.read_bytes())}, headers=key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "match", body["reasons"]
    assert body["videos"][0]["stream_index"] == 1
    assert body["signals"]["stream_index"] == 0
    assert body["signals"]["other_streams"][0]["stream_index"] == 1

    r = client.post(
        "/v1/check", files={"file": ("m.mp4", many_tracks(tmp_path).read_bytes())}, headers=key
    )
    assert r.status_code == 422, r.text
    assert r.json()["kind"] == "too_many_video_streams"
    assert f"at most {MAX_VIDEO_STREAMS}" in r.json()["detail"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg program")
@pytest.mark.parametrize(
    ("container_format", "default"),
    [("mp4", None), ("mp4", 0), ("mp4", 1), ("mpegts", None)],
    ids=["mp4", "mp4-decoy-default", "mp4-real-default", "mpegts"],
)
def test_the_picked_stream_is_the_one_the_ffmpeg_program_maps(
    tmp_path: Path, container_format: str, default: int | None
) -> None:
    clip = tracks(
        tmp_path / f"two.{container_format}",
        DECOY,
        shots(KNOWN, 1, FPS),
        default=default,
        container_format=container_format,
    )
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-i", str(clip), "-frames:v", "1", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    mapped = re.search(r"Stream #0:(\d+) -> #0:0", run.stderr)
    assert mapped is not None, run.stderr
    assert hash_video(clip).stream_index == int(mapped.group(1))


def test_each_stream_counts_towards_the_in_request_limit(
    store: Store, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two 3 s streams are 6 s of decoding: over a 5 s limit, the check is a job (202)."""
    monkeypatch.setenv("SAFESTREAM_UPLOAD_DIR", str(tmp_path / "uploads"))
    settings = ServiceSettings(max_upload_bytes=8 * 1024 * 1024, video_sync_max_s=5.0)  # type: ignore[call-arg]
    clip = tracks(tmp_path / "two.mp4", DECOY, shots(KNOWN, 1, FPS), default=0)
    with TestClient(create_app(store, settings=settings)) as client:
        key = auth(KeyRepository(store).create("integrator", "test")[0])
        r = client.post("/v1/check", files={"file": ("v.mp4", clip.read_bytes())}, headers=key)
        assert r.status_code == 202, r.text
        single = tmp_path / "one.mp4"
        encode(single, shots(KNOWN, 1, FPS), fps=FPS)
        r = client.post("/v1/check", files={"file": ("o.mp4", single.read_bytes())}, headers=key)
        assert r.status_code == 200, r.text
