"""Frames are hashed as displayed: a display matrix (rotation, mirroring) is applied.

Phones store portrait video as landscape pictures plus a display matrix. Before, the
decoded picture was hashed as stored, so a known sequence stored turned (or mirrored)
with a matrix that turns it back for display — shown exactly as the known one — was
128 bits away from its banked hashes and passed the check. Synthetic pictures only.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from safestream.engine import Engine
from safestream.engine.video import check_video
from safestream.live import Sampler, Source
from safestream.signals.pdq import pdq_from_rgb
from safestream.signals.video import (
    Orientation,
    display_orientation,
    displayed,
    frame_pdq,
    frame_rgb,
    frame_rgb_stretched,
    hash_video,
)
from safestream.store.banks import BankRepository
from video_support import encode, engine_with_known_video, known_frame, shots

FPS = 10
KNOWN = [known_frame(i) for i in (71, 72, 73)]
#: (counter-clockwise degrees, hflip, vflip) as ``VideoStream.set_display_rotation`` takes.
TURNS = [(90, False, False), (-90, False, False), (180, False, False), (0, True, False)]
TURNS_ALL = [*TURNS, (0, False, True), (90, True, False), (-90, True, False)]


def bits(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def write(path: Path, frames: list[np.ndarray], turn: tuple[int, bool, bool]) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(FPS)}
        degrees, hflip, vflip = turn
        stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def orientation_of(turn: tuple[int, bool, bool], tmp_path: Path) -> Orientation | None:
    probe = write(tmp_path / "probe.mp4", [np.zeros((16, 32, 3), np.uint8)], turn)
    with av.open(str(probe)) as container:
        return display_orientation(next(container.decode(video=0)))


def stored_turned(frames: list[np.ndarray], o: Orientation) -> list[np.ndarray]:
    """The pictures to store so that the display matrix shows ``frames``."""
    transpose, flip_rows, flip_cols = o
    out = []
    for rgb in frames:
        x = rgb[:, ::-1] if flip_cols else rgb
        x = x[::-1] if flip_rows else x
        x = x.swapaxes(0, 1) if transpose else x
        out.append(np.ascontiguousarray(x))
    return out


@pytest.fixture
def engine(repo: BankRepository, tmp_path: Path) -> Engine:
    return engine_with_known_video(repo, tmp_path, KNOWN, fps=FPS)


def turned_clip(tmp_path: Path, turn: tuple[int, bool, bool]) -> Path:
    o = orientation_of(turn, tmp_path)
    assert o is not None
    return write(tmp_path / "turned.mp4", stored_turned(shots(KNOWN, 1, FPS), o), turn)


@pytest.mark.parametrize("turn", TURNS, ids=str)
def test_a_known_sequence_stored_turned_is_found_in_an_upload(
    engine: Engine, tmp_path: Path, turn: tuple[int, bool, bool]
) -> None:
    clip = turned_clip(tmp_path, turn)
    # As stored, the pictures are far from the banked ones: the matrix is what hides them.
    with av.open(str(clip)) as container:
        first = next(container.decode(video=0))
        stored, _ = pdq_from_rgb(first.to_ndarray(format="rgb24"))
    upright, _ = pdq_from_rgb(KNOWN[0])
    assert bits(stored, upright) > 64
    hashes = hash_video(clip)
    assert bits(hashes.frames[0].pdq, upright) <= 16
    result = check_video(engine, hashes)
    assert result.verdict.matched, result.verdict.reasons
    assert [v.external_id for v in result.videos if v.matched] == ["clip-1"]


@pytest.mark.parametrize("turn", TURNS, ids=str)
def test_live_samples_are_hashed_and_kept_as_displayed(
    tmp_path: Path, turn: tuple[int, bool, bool]
) -> None:
    clip = turned_clip(tmp_path, turn)
    container = Source(url=str(clip)).open()
    try:
        samples = list(Sampler(1.0).samples(container, stop=threading.Event()))
    finally:
        container.close()
    assert len(samples) == 3
    for sample, picture in zip(samples, KNOWN, strict=True):
        assert bits(sample.pdq()[0], pdq_from_rgb(picture)[0]) <= 16
        assert sample.rgb.shape == picture.shape  # evidence is kept upright too


def test_upright_video_has_no_orientation(tmp_path: Path) -> None:
    clip = tmp_path / "plain.mp4"
    encode(clip, shots(KNOWN[:1], 1, FPS), fps=FPS)
    with av.open(str(clip)) as container:
        frame = next(container.decode(video=0))
        assert display_orientation(frame) is None
        assert np.array_equal(frame_rgb(frame), frame.to_ndarray(format="rgb24"))
    assert orientation_of((0, False, False), tmp_path) is None


def test_displayed_turns_rows_and_columns() -> None:
    grid = np.arange(6).reshape(2, 3)
    assert displayed(grid, None) is grid
    assert displayed(grid, (True, True, False)).tolist() == np.rot90(grid).tolist()
    assert displayed(grid, (False, True, True)).tolist() == np.rot90(grid, 2).tolist()
    assert displayed(grid, (True, False, True)).tolist() == np.rot90(grid, 3).tolist()
    assert displayed(grid, (False, False, True)).tolist() == grid[:, ::-1].tolist()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg program")
@pytest.mark.parametrize("turn", TURNS_ALL, ids=str)
def test_frames_are_turned_as_the_ffmpeg_program_shows_them(
    tmp_path: Path, turn: tuple[int, bool, bool]
) -> None:
    """The reference: the ``ffmpeg`` program (which vPDQ uses) turns frames for output."""
    clip = write(tmp_path / "t.mp4", [known_frame(74)], turn)
    with av.open(str(clip)) as container:
        frame = next(container.decode(video=0))
        ours = frame_rgb(frame)
        hashed, _ = frame_pdq(frame)
    command = ["ffmpeg", "-v", "error", "-i", str(clip), "-frames:v", "1", "-pix_fmt", "rgb24"]
    out: Any = subprocess.run(
        [*command, "-f", "rawvideo", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    h, w = ours.shape[:2]
    assert len(out) == h * w * 3
    theirs = np.frombuffer(out, np.uint8).reshape(h, w, 3)
    assert np.abs(theirs.astype(int) - ours.astype(int)).mean() < 3
    assert bits(hashed, pdq_from_rgb(theirs)[0]) <= 16


@pytest.mark.parametrize("turn", TURNS_ALL, ids=str)
def test_frames_stretched_for_a_classifier_are_turned_and_sized(
    tmp_path: Path, turn: tuple[int, bool, bool]
) -> None:
    """One resample to a classifier's stretch size gives what the two did: the frame as
    displayed, scaled to 512 px, then stretched by the classifier (PIL bilinear)."""
    from safestream.classify.preprocess import fit

    clip = write(tmp_path / "t.mp4", [known_frame(75)], turn)
    with av.open(str(clip)) as container:
        frame = next(container.decode(video=0))
        # Not square, so that a size given the wrong way round shows.
        direct = frame_rgb_stretched(frame, 96, 40)
        two_steps, _ = fit(frame_rgb(frame, 512), (96, 40), "stretch")
    assert direct.shape == (40, 96, 3) and direct.dtype == np.uint8
    assert direct.flags.c_contiguous
    # Area and bilinear filters differ at the drawn edges (2.5 on average at 256x256,
    # up to 7.3 for an 8x reduction); a wrong orientation differs by 60-85.
    assert np.abs(direct.astype(int) - two_steps.astype(int)).mean() < 12
    # A wrong orientation (the frame as stored) is far from it.
    stored = frame.to_ndarray(format="rgb24")
    if display_orientation(frame) is not None:
        wrong, _ = fit(stored, (96, 40), "stretch")
        assert np.abs(wrong.astype(int) - direct.astype(int)).mean() > 40
    with pytest.raises(ValueError, match="positive"):
        frame_rgb_stretched(frame, 0, 40)
