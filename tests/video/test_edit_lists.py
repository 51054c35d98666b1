"""Frames an MP4 edit list hides from players are still checked.

An edit list says which part of a track players show. FFmpeg honours it and drops the
frames outside it, so a file could carry a banked sequence that players skip, but
that anyone can extract by ignoring the edit list: it passed the check. Now a stream
whose edit list hides packets is hashed once more ignoring it. Synthetic pictures only.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from safestream.engine import Engine
from safestream.engine.video import check_video
from safestream.signals.video import hash_video
from safestream.store.banks import BankRepository
from video_support import encode, engine_with_known_video, known_frame, other_frame, shots

FPS = 10
KNOWN = [known_frame(i) for i in (91, 92, 93)]


def hide_first(src: Path, dst: Path, seconds: float) -> Path:
    """Remux with the first ``seconds`` before time 0: the MP4 muxer's edit list hides them."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        assert s_in.time_base is not None
        shift = int(seconds / s_in.time_base)
        for packet in inp.demux(s_in):
            if packet.dts is None or packet.pts is None:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = s_out
            out.mux(packet)
    return dst


@pytest.fixture
def engine(repo: BankRepository, tmp_path: Path) -> Engine:
    return engine_with_known_video(repo, tmp_path, KNOWN, fps=FPS)


@pytest.fixture
def hidden(tmp_path: Path) -> Path:
    """The banked sequence (3 s), then 5 s of filler; the edit list shows the filler only."""
    src = tmp_path / "src.mp4"
    frames = shots(KNOWN, 1, FPS) + shots([other_frame(950 + i) for i in range(5)], 1, FPS)
    encode(src, frames, fps=FPS, gop=4 * FPS)
    return hide_first(src, tmp_path / "hidden.mp4", 3.0)


def test_frames_an_edit_list_hides_are_hashed_in_another_pass(hidden: Path) -> None:
    hashes = hash_video(hidden, fold_bits=None)
    # As players show it: the filler only, from 0 s.
    assert [f.timestamp_s for f in hashes.frames] == pytest.approx([0, 1, 2, 3, 4])
    assert hashes.packets_hidden == 3 * FPS
    [whole] = hashes.other_streams
    assert whole.edit_list_ignored and whole.stream_index == hashes.stream_index
    assert whole.frames_decoded == 8 * FPS and len(whole.frames) == 8
    assert hashes.to_dict()["other_streams"][0]["edit_list_ignored"] is True


def test_a_banked_sequence_an_edit_list_hides_is_found(engine: Engine, hidden: Path) -> None:
    result = check_video(engine, hash_video(hidden))
    assert result.verdict.matched, result.verdict.reasons
    [video] = [v for v in result.videos if v.matched]
    assert video.external_id == "clip-1" and video.edit_list_ignored
    assert video.to_dict()["edit_list_ignored"] is True
    assert any("edit list" in reason for reason in result.verdict.reasons)


def test_ordinary_mp4_needs_no_second_pass(tmp_path: Path) -> None:
    clip = tmp_path / "plain.mp4"
    encode(clip, shots([other_frame(960)], 2, FPS), fps=FPS, options={"preset": "veryfast"})
    hashes = hash_video(clip)
    assert hashes.packets_hidden == 0 and hashes.other_streams == ()
