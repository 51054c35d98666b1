"""A single frame flashed between two samples is hashed too (scene changes).

Sampling one frame a second, as vPDQ does, never looked at the 29 frames between two
samples: a banked picture shown for one frame, which anyone can pause on or extract,
passed the check. Now a frame unlike the one before it (a cut, a flash) is hashed as
well, at most two a second, and checked against the image banks; ``frames`` (vPDQ's
sampling) stays as it was. Synthetic pictures only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from safestream.banks.formats import HashRecord
from safestream.engine import Engine
from safestream.engine.video import check_video
from safestream.signals.pdq import pdq_from_rgb
from safestream.signals.video import MAX_SCENE_FRAMES_PER_S, hash_video
from safestream.store.banks import BankRepository
from video_support import encode, known_frame, other_frame, scene, shots

FPS = 10
FLASH_AT = 25  # frame 25 = 2.5 s: between the samples at 2 s and 3 s


def flashed(tmp_path: Path, picture: np.ndarray) -> Path:
    frames = shots([other_frame(970 + i) for i in range(6)], 1, FPS)
    frames[FLASH_AT] = picture
    path = tmp_path / "flash.mp4"
    encode(path, frames, fps=FPS)
    return path


def test_a_flashed_frame_is_hashed_between_samples(tmp_path: Path) -> None:
    picture = known_frame(97)
    hashes = hash_video(flashed(tmp_path, picture))
    assert [f.timestamp_s for f in hashes.frames if f.frame_number == FLASH_AT] == []
    flash = [f for f in hashes.scene_frames if f.frame_number == FLASH_AT]
    assert flash and flash[0].timestamp_s == pytest.approx(2.5)
    distance = bin(int(flash[0].pdq, 16) ^ int(pdq_from_rgb(picture)[0], 16)).count("1")
    assert distance <= 16
    assert hashes.to_dict()["scene_frames"][0]["frame_number"] in (FLASH_AT, FLASH_AT + 1)


def test_a_banked_picture_flashed_for_one_frame_is_found(
    repo: BankRepository, tmp_path: Path
) -> None:
    picture = known_frame(98)
    repo.create_bank("known", source="test")
    repo.add_entries("known", [HashRecord("pdq", pdq_from_rgb(picture)[0], "K1", None, ())])
    result = check_video(Engine(repo), hash_video(flashed(tmp_path, picture)))
    assert result.verdict.matched, result.verdict.reasons
    [match] = result.frame_matches
    assert match.scene_change and match.timestamp_s == pytest.approx(2.5)
    assert match.to_dict()["scene_change"] is True
    assert any("scene change" in reason for reason in result.verdict.reasons)


def test_steady_shots_and_motion_add_no_scene_frames(tmp_path: Path) -> None:
    still = tmp_path / "still.mp4"
    encode(still, scene(other_frame(980), 4, FPS, jitter=3), fps=FPS)
    assert hash_video(still).scene_frames == ()
    base = other_frame(981, 480, 240)
    pan = [np.ascontiguousarray(base[:, 4 * i : 4 * i + 320]) for i in range(40)]
    panned = tmp_path / "pan.mp4"
    encode(panned, pan, fps=FPS)
    assert hash_video(panned).scene_frames == ()


def test_scene_frames_are_bounded_per_second(tmp_path: Path) -> None:
    """Cuts on every frame (a strobe) give at most two extra hashes a second."""
    strobe = tmp_path / "strobe.mp4"
    encode(strobe, [other_frame(990 + i % 2 * 7) for i in range(4 * FPS)], fps=FPS)
    hashes = hash_video(strobe)
    assert 0 < len(hashes.scene_frames) <= MAX_SCENE_FRAMES_PER_S * (hashes.duration_s + 1)
