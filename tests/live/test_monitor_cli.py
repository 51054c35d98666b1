"""``safestream monitor``: one JSON event per line, a banked clip ends the stream."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from safestream.cli import cli
from safestream.cli_video import COMMANDS
from safestream.store.db import Store
from safestream.store.service import CheckRepository
from video_support import encode, known_frame, other_frame, shots


def test_monitor_command(tmp_path: Path) -> None:
    for command in COMMANDS:  # until cli.py registers the plug-in itself
        if isinstance(command, click.Command) and command.name not in cli.commands:
            cli.add_command(command)
    known = [known_frame(i) for i in (61, 62)]
    clip, stream, other = tmp_path / "clip.mp4", tmp_path / "stream.ts", tmp_path / "other.ts"
    encode(clip, shots(known, 1, 10))
    filler = [other_frame(i) for i in range(600, 606)]
    encode(stream, shots(filler[:3] + known + filler[3:], 1, 10), container_format="mpegts")
    encode(other, shots(filler, 1, 10), container_format="mpegts")
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data")]
    assert runner.invoke(cli, [*base, "bank", "create", "v"]).exit_code == 0
    r = runner.invoke(cli, [*base, "video", "bank-add", "v", str(clip)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        cli,
        [
            *base,
            "monitor",
            "--no-realtime",
            "--queue",
            "64",
            "--ip",
            "192.0.2.1",
            "--port",
            "4444",
            str(stream),
            str(other),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.output.splitlines()]
    matched = [e for e in events if e["event"] == "sample" and e["verdict"] == "match"]
    assert matched and matched[0]["stream_id"] == "stream-1"
    assert 3.0 <= matched[0]["stream_time_s"] <= 6.0
    actions = [e for e in events if e["event"] == "action"]
    assert sorted(a["action"] for a in actions) == ["end_stream", "open_case"]
    assert actions[0]["context"]["ip_address"] == "192.0.2.1"
    assert actions[0]["context"]["source_port"] == 4444
    ends = {e["stream_id"]: e["ended_by"] for e in events if e["event"] == "stream_end"}
    # --no-realtime reads the whole file in milliseconds: the reader may reach its end
    # before the verdict ends it (tests/live/test_monitor.py checks that at real time).
    assert ends["stream-1"] in ("end_stream", "eof") and ends["stream-2"] == "eof"
    assert [a["stream_id"] for a in actions if a["action"] == "end_stream"] == ["stream-1"]
    # open_case wrote a live check record (no evidence keys here: frames not kept).
    (case,) = [e for e in events if e["event"] == "case"]
    assert case["stream_id"] == "stream-1" and case["evidence_ids"] == []
    store = Store.open(data_dir=tmp_path / "data")
    try:
        record = CheckRepository(store).get(case["content_id"])
    finally:
        store.dispose()
    assert record["context"]["surface"] == "live"
    assert record["context"]["ip_address"] == "192.0.2.1"
    assert record["context"]["source_port"] == 4444
    assert record["signals"]["live"]["sample_times_s"] == [matched[0]["stream_time_s"]]
    r = runner.invoke(cli, [*base, "monitor", str(tmp_path / "missing.ts")])
    assert r.exit_code == 2


def test_monitor_decoder_options(tmp_path: Path) -> None:
    """--no-ip-chain / --skip-loop-filter reach the decoder (stream_end shows its counters)."""
    from safestream.live.ingest import DEFAULT_LOOP_FILTER_SKIP, LOOP_FILTER_SKIPS

    for command in COMMANDS:
        if isinstance(command, click.Command) and command.name not in cli.commands:
            cli.add_command(command)
    option = next(p for p in cli.commands["monitor"].params if p.name == "skip_loop_filter")
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == LOOP_FILTER_SKIPS
    assert option.default == DEFAULT_LOOP_FILTER_SKIP
    from safestream.live.ingest import MAX_LIVE_VIDEO_STREAMS, VIDEO_STREAM_CHOICES

    params = {p.name: p for p in cli.commands["monitor"].params}
    choice = params["video_streams"].type
    assert isinstance(choice, click.Choice)
    assert tuple(choice.choices) == VIDEO_STREAM_CHOICES
    assert params["video_streams"].default == "all"
    assert params["max_video_streams"].default == MAX_LIVE_VIDEO_STREAMS
    import av

    stream = tmp_path / "b.ts"
    with av.open(str(stream), "w", format="mpegts") as out:  # B-pyramid: the chain has work
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.options = {"preset": "veryfast", "g": "20", "sc_threshold": "0"}
        for i, rgb in enumerate(shots([other_frame(i) for i in range(610, 614)], 1, 10)):
            frame = rgb.copy()
            frame[100:140, (i * 9) % 280 : (i * 9) % 280 + 40] = (230, 40, 40)
            for packet in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "monitor", "--no-realtime", "--no-cases"]
    ends = {}
    for extra in ([], ["--no-ip-chain", "--skip-loop-filter", "all"]):
        r = runner.invoke(cli, [*base, *extra, str(stream)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        events = [json.loads(line) for line in r.output.splitlines()]
        (end,) = [e for e in events if e["event"] == "stream_end"]
        assert end["metrics"]["frames_decoded"] > 0
        ends[bool(extra)] = end["metrics"]
    assert ends[False]["b_references_skipped"] > 0
    assert ends[True]["b_references_skipped"] == 0
    assert ends[True]["frames_decoded"] > ends[False]["frames_decoded"]
    r = runner.invoke(cli, [*base, "--skip-loop-filter", "fast", str(stream)])
    assert r.exit_code == 2 and "fast" in r.output


def test_monitor_video_stream_options(tmp_path: Path) -> None:
    """--video-streams / --max-video-streams reach the monitor: a source with two video
    streams is sampled in both, in the preferred one only, or refused."""
    from video_support import encode_tracks

    for command in COMMANDS:
        if isinstance(command, click.Command) and command.name not in cli.commands:
            cli.add_command(command)
    two = encode_tracks(
        tmp_path / "two.ts",
        shots([other_frame(i) for i in (620, 621, 622)], 1, 10),
        shots([other_frame(i) for i in (630, 631, 632)], 1, 10),
        container_format="mpegts",
    )
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "monitor", "--no-realtime", "--queue", "64"]
    seen = {}
    for flags in ([], ["--video-streams", "preferred"], ["--max-video-streams", "1"]):
        r = runner.invoke(cli, [*base, *flags, str(two)], catch_exceptions=False)
        events = [json.loads(line) for line in r.output.splitlines()]
        seen[" ".join(flags)] = (
            r.exit_code,
            sorted({e["stream_index"] for e in events if e["event"] == "sample"}),
            [e["message"] for e in events if e["event"] == "error"],
        )
    assert seen[""] == (0, [0, 1], [])
    assert seen["--video-streams preferred"][:2] == (0, [0])
    code, indexes, (message,) = seen["--max-video-streams 1"]
    assert code == 2 and indexes == []
    assert "2 video streams; at most 1 are monitored" in message


def test_monitor_hwaccel_option(tmp_path: Path) -> None:
    """--hwaccel reaches each source: a device type FFmpeg lacks ends the stream with an
    error that says so (no silent fallback to the CPU)."""
    for command in COMMANDS:
        if isinstance(command, click.Command) and command.name not in cli.commands:
            cli.add_command(command)
    clip = tmp_path / "c.ts"
    encode(clip, shots([other_frame(640)], 2, 10), container_format="mpegts")
    r = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(tmp_path / "data"),
            "monitor",
            "--no-realtime",
            "--hwaccel",
            "warp-drive",
            str(clip),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 2
    events = [json.loads(line) for line in r.output.splitlines()]
    (error,) = [e for e in events if e["event"] == "error"]
    assert "hardware decoding 'warp-drive' is not in this FFmpeg build" in error["message"]
    assert not [e for e in events if e["event"] == "sample"]
