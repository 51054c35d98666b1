"""``safestream hash`` and ``safestream scan`` with video files (told apart by content)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from safestream.banks.formats import HashRecord
from safestream.cli import cli
from safestream.engine.video import add_video
from safestream.signals.hashing import hash_bytes, hash_file
from safestream.signals.video import VideoTooLongError, hash_media_file, hash_video, sniff_video
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from video_support import encode, known_frame, other_frame, shots
from webhook_support import store_url

FPS = 10
#: The known picture is on screen from X to Y seconds of ``shown.mp4``.
X, Y = 4, 7


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("scan-media")
    known = known_frame(91)
    clip_pictures = [known_frame(i) for i in (11, 12, 13, 14)]
    out = {
        "shown": d / "shown.mp4",
        "clip": d / "clip.mp4",
        "long_with_clip": d / "long_with_clip.mkv",
        "clean": d / "clean.webm.bin",  # a misleading name: content decides
        "as_jpg": d / "movie.jpg",
        "raw_h264": d / "elementary.bin",
        "known_png": d / "known.png",
        "text": d / "notes.mp4",
    }
    before = [other_frame(700 + i) for i in range(X)]
    after = [other_frame(800 + i) for i in range(3)]
    encode(
        out["shown"],
        shots(before, 1, FPS) + shots([known], Y - X, FPS) + shots(after, 1, FPS),
        fps=FPS,
    )
    encode(out["clip"], shots(clip_pictures, 1, FPS), fps=FPS)
    filler = [other_frame(900 + i) for i in range(6)]
    encode(
        out["long_with_clip"],
        shots(filler[:3] + clip_pictures + filler[3:], 1, FPS),
        fps=FPS,
        options={"crf": "30"},
    )
    encode(
        out["clean"],
        shots([other_frame(1000 + i) for i in range(3)], 1, FPS),
        fps=FPS,
        container_format="matroska",
    )
    shutil.copy(out["clip"], out["as_jpg"])
    encode(out["raw_h264"], shots(clip_pictures[:2], 1, FPS), fps=FPS, container_format="h264")
    Image.fromarray(known).save(out["known_png"])
    out["text"].write_text("plain text, neither an image nor a video\n")
    return out


def invoke(store: Store, tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["--data-dir", str(tmp_path / "data"), "--database-url", store_url(store), *args],
        catch_exceptions=False,
    )


def test_sniff_by_content(media: dict[str, Path]) -> None:
    assert sniff_video(media["shown"].read_bytes()[:1024])
    assert sniff_video(media["long_with_clip"].read_bytes()[:1024])  # Matroska
    assert not sniff_video(media["known_png"].read_bytes()[:1024])
    assert not sniff_video(b"\x00" * 1024)
    # AVIF/HEIF share MP4's box layout: their brands mark them as images.
    assert not sniff_video(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf")
    # No signature at all: FFmpeg's content probe recognises the H.264 stream.
    assert not sniff_video(media["raw_h264"].read_bytes()[:1024])
    raw = hash_media_file(media["raw_h264"])
    assert raw.frames and len(raw.sha1) == 40  # a VideoHashes, not an image


def test_hash_command_images_and_videos(
    store: Store, tmp_path: Path, media: dict[str, Path]
) -> None:
    r = invoke(
        store,
        tmp_path,
        "hash",
        str(media["shown"]),
        str(media["as_jpg"]),
        str(media["known_png"]),
        str(media["text"]),
    )
    assert r.exit_code == 2, r.output  # the text file
    shown, as_jpg, image, text = (json.loads(line) for line in r.output.splitlines())
    assert shown["kind"] == "video" and as_jpg["kind"] == "video"
    expected = hash_video(media["shown"])
    assert shown["md5"] == expected.md5 and shown["sha256"] == expected.sha256
    assert shown["sha1"] == hashlib.sha1(media["shown"].read_bytes()).hexdigest()
    assert 9.5 <= shown["duration_s"] <= 10.5 and shown["frames_sampled"] == 10
    assert shown["frames"] == [f.to_dict() for f in expected.frames]
    assert {"frame_number", "quality", "pdq", "timestamp_s"} == set(shown["frames"][0])
    # Images are unchanged: the same object as before videos were known.
    assert image == {"path": str(media["known_png"]), **hash_file(media["known_png"]).to_dict()}
    assert text["error"]["kind"] == "not_an_image"
    assert "neither an image nor a video" in text["error"]["message"]

    faster = invoke(store, tmp_path, "hash", "--fps", "2", str(media["shown"]))
    assert faster.exit_code == 0, faster.output
    assert json.loads(faster.output)["frames_sampled"] == 20
    small = invoke(store, tmp_path, "hash", "--max-pixels", "1000", str(media["shown"]))
    assert small.exit_code == 2
    assert json.loads(small.output)["error"]["kind"] == "video_too_large"


def _bank(store: Store, media: dict[str, Path]) -> BankRepository:
    repo = BankRepository(store)
    repo.create_bank("images", source="test")
    known = hash_bytes(media["known_png"].read_bytes())
    assert known.pdq is not None
    repo.add_entries("images", [HashRecord("pdq", known.pdq, "IMG-1", "test", ())])
    repo.create_bank("videos", source="test")
    add_video(repo, "videos", hash_video(media["clip"]), external_id="VID-1")
    return repo


@pytest.mark.parametrize("workers", ["1", "2"])
def test_scan_folder_with_videos(
    store: Store, tmp_path: Path, media: dict[str, Path], workers: str
) -> None:
    _bank(store, media)
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("shown", "long_with_clip", "clean", "as_jpg", "known_png"):
        shutil.copy(media[name], folder / media[name].name)
    cut = media["shown"].read_bytes()
    (folder / "truncated.mp4").write_bytes(cut[: len(cut) // 2])

    r = invoke(store, tmp_path, "scan", "--no-progress", "--workers", workers, str(folder))
    assert r.exit_code == 2, r.output  # the truncated video: errors win over matches
    rows = {Path(row["path"]).name: row for row in map(json.loads, r.stdout.splitlines())}
    assert set(rows) == {
        "shown.mp4",
        "long_with_clip.mkv",
        "clean.webm.bin",
        "movie.jpg",
        "known.png",
        "truncated.mp4",
    }

    shown = rows["shown.mp4"]
    assert shown["kind"] == "video" and shown["outcome"] == "match"
    assert shown["frame_matches"] and all(
        X <= f["timestamp_s"] <= Y + 1 and f["bank"] == "images" and f["external_id"] == "IMG-1"
        for f in shown["frame_matches"]
    )
    assert shown["signals"]["kind"] == "video"

    long = rows["long_with_clip.mkv"]
    assert long["outcome"] == "match" and long["frame_matches"] == []
    [video] = long["videos"]
    assert video["kind"] == "clip" and video["external_id"] == "VID-1"
    assert (video["first_match_s"], video["last_match_s"]) == (3.0, 6.0)

    exact = rows["movie.jpg"]
    assert exact["kind"] == "video" and exact["outcome"] == "match"
    assert {"md5", "sha256"} <= {m["signal_type"] for m in exact["matches"]}
    assert exact["videos"][0]["kind"] == "exact_file"

    assert rows["clean.webm.bin"]["outcome"] == "no_match"
    assert rows["clean.webm.bin"]["kind"] == "video"
    assert rows["known.png"]["outcome"] == "match" and "kind" not in rows["known.png"]

    bad = rows["truncated.mp4"]
    assert bad["outcome"] == "error" and bad["kind"] == "video"
    assert bad["error"]["kind"] == "corrupt_video"
    assert "truncated or corrupt" in bad["error"]["message"]

    header = next(line for line in r.stderr.splitlines() if "videos" in line)
    data = next(line for line in r.stderr.splitlines() if line.startswith("│"))
    table = dict(zip(_cells(header, "┃"), _cells(data, "│"), strict=True))
    # 6 files, 5 of them videos (the truncated one included), 4 matched, 1 error
    assert (table["files"], table["videos"], table["matched"]) == ("6", "5", "4")
    assert table["errors"].startswith("1")


def _cells(line: str, bar: str) -> list[str]:
    return [c.strip() for c in line.strip().strip(bar).split(bar)]


def test_scan_exit_codes_and_csv(store: Store, tmp_path: Path, media: dict[str, Path]) -> None:
    _bank(store, media)
    clean = invoke(store, tmp_path, "scan", "--no-progress", str(media["clean"]))
    assert clean.exit_code == 0, clean.output
    out = tmp_path / "scan.csv"
    hit = invoke(
        store, tmp_path, "scan", "--no-progress", "--format", "csv", "-o", str(out),
        str(media["shown"]),
    )  # fmt: skip
    assert hit.exit_code == 1, hit.output

    [row] = list(csv.DictReader(io.StringIO(out.read_text())))
    assert row["kind"] == "video" and row["outcome"] == "match" and row["bank"] == "images"
    stamps = [float(t) for t in row["match_timestamps_s"].split()]
    assert stamps and all(X <= t <= Y + 1 for t in stamps)


def test_decoding_stops_at_max_duration(media: dict[str, Path]) -> None:
    """The request path's guard against a header that understates the length."""
    with pytest.raises(VideoTooLongError, match="runs past 3 s"):
        hash_video(media["shown"], max_duration_s=3)
    assert hash_video(media["shown"], max_duration_s=30).frames
