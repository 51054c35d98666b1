"""Video hashing (per-frame PDQ, vPDQ text) and video-to-video matching on synthetic video."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import av
import numpy as np
import pdqhash
import pytest
from PIL import Image

from safestream.errors import SafestreamError, SignalValueError
from safestream.signals.pdq import bits_to_hex
from safestream.signals.video import (
    CorruptVideoError,
    FrameHash,
    NoFramesError,
    NotAVideoError,
    VideoError,
    VideoTooLargeError,
    find_clip,
    hash_video,
    match_videos,
    read_vpdq,
    write_vpdq,
)
from video_support import encode, known_frame, other_frame, shots

FPS = 10


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def four_shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("v") / "four.mp4"
    encode(path, shots([known_frame(i) for i in range(1, 5)], 2, FPS), fps=FPS)
    return path


def test_sampling_folding_and_timestamps(four_shots: Path) -> None:
    h = hash_video(four_shots)
    assert h.frames_decoded == 80
    assert h.frames_sampled == 8  # 1 frame/s over 8 s
    # Two samples per static shot, folded into one each.
    assert [f.timestamp_s for f in h.frames] == [0.0, 2.0, 4.0, 6.0]
    assert [f.frame_number for f in h.frames] == [0, 20, 40, 60]
    assert all(f.quality >= 50 for f in h.frames)
    assert (h.width, h.height) == (320, 240)
    assert h.duration_s == pytest.approx(8.0, abs=0.2)
    import hashlib

    data = four_shots.read_bytes()
    assert h.md5 == hashlib.md5(data).hexdigest()
    assert h.sha256 == hashlib.sha256(data).hexdigest()
    unfolded = hash_video(four_shots, fold_bits=None)
    assert len(unfolded.frames) == 8
    every = hash_video(four_shots, sample_fps=None, fold_bits=None)
    assert len(every.frames) == 80
    faster = hash_video(four_shots, sample_fps=2.0, fold_bits=None)
    assert len(faster.frames) == 16


def test_frame_hashes_are_pdqhash_of_rgb24_frames(four_shots: Path) -> None:
    """Each hash is pdqhash.compute of the decoded RGB24 frame, as Meta's vPDQ computes it."""
    h = hash_video(four_shots, sample_fps=None, fold_bits=None)
    with av.open(str(four_shots)) as container:
        expected = []
        for frame in container.decode(video=0):
            bits, quality = pdqhash.compute(frame.to_ndarray(format="rgb24"))
            expected.append((bits_to_hex(bits), int(quality)))
    assert [(f.pdq, f.quality) for f in h.frames] == expected


def test_bytes_and_file_objects(four_shots: Path) -> None:
    data = four_shots.read_bytes()
    a = hash_video(four_shots)
    assert hash_video(data).frames == a.frames
    assert hash_video(io.BytesIO(data)).sha256 == a.sha256


def test_vpdq_round_trip(four_shots: Path) -> None:
    frames = hash_video(four_shots).frames
    text = write_vpdq(frames)
    first = text.splitlines()[0].split(",")
    assert first[0] == "0" and first[2] == frames[0].pdq and first[3] == "0.000"
    assert read_vpdq("# comment\n\n" + text) == frames


@pytest.mark.parametrize(
    "line",
    [
        "1,100,abc,0.0",
        "1,100," + "g" * 64 + ",0.0",
        "x,100," + "0" * 64 + ",0.0",
        "1,101," + "0" * 64 + ",0.0",
        "1,100," + "0" * 64,
        "1,100," + "0" * 64 + ",-1",
    ],
)
def test_vpdq_bad_lines(line: str) -> None:
    with pytest.raises(SignalValueError, match=":1:"):
        read_vpdq(line)


def test_reencoded_video_matches_and_unrelated_does_not(four_shots: Path, tmp_path: Path) -> None:
    # The same shots, smaller and re-encoded at a low bitrate, at another frame rate.
    small = [_resize(known_frame(i), 240, 180) for i in range(1, 5)]
    copy = tmp_path / "copy.mkv"
    encode(copy, shots(small, 2, 15), fps=15, options={"crf": "38"})
    unrelated = tmp_path / "other.mp4"
    encode(unrelated, shots([other_frame(i) for i in range(10, 14)], 2, FPS), fps=FPS)
    a, b, c = (hash_video(p).frames for p in (four_shots, copy, unrelated))
    m = match_videos(b, a)
    assert m.matched and m.query_match_percent == 100 and m.compared_match_percent == 100
    n = match_videos(c, a)
    assert not n.matched and n.query_match_percent == 0
    strict = match_videos(b, a[:2], compared_match_percent=80, query_match_percent=80)
    assert not strict.matched and strict.query_match_percent < 80
    assert strict.compared_match_percent == 100


def test_short_clip_inside_long_video(tmp_path: Path) -> None:
    clip_pictures = [known_frame(i) for i in (21, 22, 23)]
    clip = tmp_path / "clip.mp4"
    encode(clip, shots(clip_pictures, 1, FPS), fps=FPS)
    filler = [other_frame(i) for i in range(100, 112)]
    long = tmp_path / "long.mp4"
    encode(long, shots(filler[:6] + clip_pictures + filler[6:], 1, FPS), fps=FPS)
    c, v = hash_video(clip).frames, hash_video(long).frames
    whole = match_videos(v, c)
    assert not whole.matched and whole.compared_match_percent == 100
    found = find_clip(c, v)
    assert found is not None and found.matched
    assert (found.start_s, found.end_s) == (6.0, 8.0)
    assert find_clip(c, [f for f in v if not 6 <= f.timestamp_s <= 8]) is None


@pytest.mark.parametrize("content", [b"not a video at all\n" * 100, b"\x00" * 4096])
def test_not_a_video(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "x.mp4"
    p.write_bytes(content)
    with pytest.raises(NotAVideoError, match=r"x\.mp4"):
        hash_video(p)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(NotAVideoError, match="empty"):
        hash_video(empty)
    with pytest.raises(VideoError, match="no such file"):
        hash_video(tmp_path / "missing.mp4")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("suffix", ["mp4", "ts", "mkv"])
def test_truncated_video_never_crashes(
    four_shots: Path, tmp_path: Path, keep: float, suffix: str
) -> None:
    src = tmp_path / f"full.{suffix}"
    encode(src, shots([known_frame(i) for i in range(1, 5)], 2, FPS), fps=FPS)
    data = src.read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: int(len(data) * keep)])
    try:
        h = hash_video(cut)
    except VideoError as exc:
        assert str(exc)  # a clear message, a SafestreamError subclass
    else:  # streaming formats decode what arrived
        assert 0 < len(h.frames) <= 4


def test_corrupted_bytes_never_crash(four_shots: Path, tmp_path: Path) -> None:
    data = bytearray(four_shots.read_bytes())
    rng = np.random.default_rng(5)
    for i in rng.integers(len(data) // 10, len(data), size=200):
        data[i] = int(rng.integers(0, 256))
    p = tmp_path / "bad.mp4"
    p.write_bytes(bytes(data))
    with contextlib.suppress(SafestreamError):
        hash_video(p)


def test_audio_only_is_not_a_video(tmp_path: Path) -> None:
    p = tmp_path / "audio.ts"
    with av.open(str(p), "w") as out:
        stream = out.add_stream("mp2", rate=48000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1152), dtype=np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 48000
        for _ in range(10):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(NotAVideoError, match="no video stream"):
        hash_video(p)


def test_zero_frames(tmp_path: Path) -> None:
    """A transport stream cut after its tables: a video stream, not one frame."""
    src = tmp_path / "a.ts"
    encode(src, shots([known_frame(1)], 1, FPS), fps=FPS)
    p = tmp_path / "zero.ts"
    p.write_bytes(src.read_bytes()[: 188 * 3])
    with pytest.raises(NoFramesError, match="no decodable frame"):
        hash_video(p)


def test_huge_dimensions_refused_before_decoding(four_shots: Path) -> None:
    with pytest.raises(VideoTooLargeError, match="320x240"):
        hash_video(four_shots, max_frame_pixels=320 * 240 - 1)


def test_scaled_hashing_stays_close(tmp_path: Path) -> None:
    big = [_resize(known_frame(i), 1280, 720) for i in (1, 2)]
    p = tmp_path / "hd.mp4"
    encode(p, shots(big, 1, 5), fps=5)
    full = hash_video(p).frames
    scaled = hash_video(p, max_side=512).frames
    assert len(full) == len(scaled) == 2
    m = match_videos(scaled, full)
    assert m.matched


def test_frame_hash_to_dict() -> None:
    f = FrameHash(3, 90, "0" * 64, 1.23456)
    assert f.to_dict() == {"frame_number": 3, "quality": 90, "pdq": "0" * 64, "timestamp_s": 1.235}


def test_corrupt_error_is_video_error() -> None:
    assert issubclass(CorruptVideoError, VideoError)


def test_timestamps_count_from_the_first_frame(tmp_path: Path) -> None:
    """MPEG-TS clocks start at an arbitrary time; vPDQ timestamps start at 0."""
    p = tmp_path / "a.ts"
    encode(
        p, shots([known_frame(i) for i in (1, 2, 3)], 1, FPS), fps=FPS, container_format="mpegts"
    )
    h = hash_video(p)
    assert [f.timestamp_s for f in h.frames] == pytest.approx([0.0, 1.0, 2.0])
    assert h.frames_sampled == 3
