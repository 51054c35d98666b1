"""Video banks (frames as tagged PDQ entries) and the ``safestream video`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from safestream.cli import cli
from safestream.cli_video import COMMANDS
from safestream.engine import Engine
from safestream.engine.video import add_video, match_video
from safestream.signals.video import hash_video, read_vpdq
from safestream.store.banks import BankRepository
from video_support import encode, known_frame, other_frame, shots

FPS = 10


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    known = [known_frame(i) for i in (31, 32, 33, 34, 35)]
    filler = [other_frame(i) for i in range(200, 210)]
    out = {
        "known": d / "known.mp4",
        "copy": d / "copy.mkv",
        "long": d / "long.mp4",
        "other": d / "other.mp4",
    }
    encode(out["known"], shots(known, 1, FPS), fps=FPS)
    encode(out["copy"], shots(known, 1, 12), fps=12, options={"crf": "35"})
    encode(out["long"], shots(filler[:5] + known + filler[5:], 1, FPS), fps=FPS)
    encode(out["other"], shots(filler, 1, FPS), fps=FPS)
    return out


def test_bank_video_matching(repo: BankRepository, videos: dict[str, Path]) -> None:
    repo.create_bank("vids", source="test")
    known = hash_video(videos["known"])
    added = add_video(repo, "vids", known, external_id="v-1", labels=("test",))
    assert added["frame_entries"] == 5 and added["entries_added"] == 7
    engine = Engine(repo)

    exact = match_video(engine, known)
    assert [m.kind for m in exact] == ["exact_file"]
    assert exact[0].external_id == "v-1" and exact[0].labels == ("test",)

    copy = match_video(engine, hash_video(videos["copy"]))
    assert len(copy) == 1 and copy[0].kind == "video" and copy[0].matched
    assert copy[0].bank_coverage_percent == 100

    clip = match_video(engine, hash_video(videos["long"]))
    assert len(clip) == 1 and clip[0].kind == "clip" and clip[0].matched
    assert clip[0].query_match_percent < 50
    assert (clip[0].first_match_s, clip[0].last_match_s) == (5.0, 9.0)
    assert not match_video(engine, hash_video(videos["long"]), clips=False)[0].matched

    assert match_video(engine, hash_video(videos["other"])) == []

    # Frame entries are ordinary PDQ entries: a single frame (an image) matches them.
    frame_hit = engine.lookup("pdq", known.frames[0].pdq)
    assert frame_hit and frame_hit[0].bank == "vids"

    repo.update_bank("vids", enabled=False)
    engine.refresh()
    assert match_video(engine, hash_video(videos["copy"])) == []


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    for command in COMMANDS:  # until cli.py registers the plug-in itself
        if isinstance(command, click.Command) and command.name not in cli.commands:
            cli.add_command(command)
    runner = CliRunner()
    data_dir = tmp_path / "data"

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)

    return invoke


def test_cli_hash_bank_add_match(run, videos: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("video", "hash", str(videos["known"]))
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output)
    assert len(obj["frames"]) == 5 and len(obj["md5"]) == 32

    r = run("video", "hash", "--vpdq", str(videos["known"]))
    assert r.exit_code == 0
    frames = read_vpdq(r.output)
    assert [f.timestamp_s for f in frames] == [0, 1, 2, 3, 4]

    bad = tmp_path / "bad.mp4"
    bad.write_text("hello")
    r = run("video", "hash", str(bad), str(videos["known"]))
    assert r.exit_code == 2
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert lines[0]["error"] == "not_a_video" and "frames" in lines[1]

    assert run("bank", "create", "vids").exit_code == 0
    r = run("video", "bank-add", "vids", str(videos["known"]), "--external-id", "x1")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["entries_added"] == 7
    assert run("video", "bank-add", "nosuch", str(videos["known"])).exit_code == 2

    r = run("video", "match", str(videos["copy"]), str(videos["other"]), str(videos["long"]))
    assert r.exit_code == 1, r.output
    copy, other, long = (json.loads(x) for x in r.output.splitlines())
    assert copy["matched"] and copy["videos"][0]["kind"] == "video"
    assert copy["videos"][0]["external_id"] == "x1"
    assert not other["matched"] and other["videos"] == []
    assert long["matched"] and long["videos"][0]["kind"] == "clip"

    r = run("video", "match", "--no-clips", str(videos["other"]), str(videos["long"]))
    assert r.exit_code == 0
    r = run("video", "match", str(bad))
    assert r.exit_code == 2
