"""Sample hashes from the frame's luma in whole blocks (frame_pdq) and lazy RGB samples."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from safestream.errors import InputError
from safestream.live.ingest import Sample, StreamError
from safestream.signals.pdq import pdq_from_rgb
from safestream.signals.video import frame_pdq, frame_rgb
from video_support import encode, known_frame, other_frame


def bits(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def frames_of(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(c.streams.video[0]))


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (854, 480), (320, 240), (192, 108)])
def test_frame_pdq_is_close_to_pdqhash_of_the_full_size_frame(
    tmp_path: Path, width: int, height: int
) -> None:
    path = tmp_path / "f.mp4"
    pictures = [known_frame(7, width, height), other_frame(8, width, height)]
    encode(path, [p for p in pictures for _ in range(3)], options={"crf": "12"})
    distances = []
    for frame in frames_of(path)[::3]:
        pdq, quality = frame_pdq(frame)
        exact, exact_quality = pdq_from_rgb(frame.to_ndarray(format="rgb24"))
        distances.append(bits(pdq, exact))
        assert abs(quality - exact_quality) <= 10
    assert max(distances) <= 8, distances
    # ... and far from an unrelated picture's hash (the hash depends on the picture).
    a, b = (frame_pdq(f)[0] for f in frames_of(path)[::3])
    assert bits(a, b) > 60


def test_sample_pixels_are_made_on_demand(tmp_path: Path) -> None:
    path = tmp_path / "s.mp4"
    encode(path, [known_frame(3, 640, 360)] * 2)
    frame = frames_of(path)[0]
    sample = Sample(1.0, 0.0, True, frame=frame, max_side=320)
    assert sample.pdq() == frame_pdq(frame)
    rgb = sample.rgb
    assert rgb.shape == (180, 320, 3) and (rgb == frame_rgb(frame, 320)).all()
    sample.release()
    assert sample.rgb is rgb  # made before the release: kept
    assert sample.pdq() == pdq_from_rgb(rgb)  # no frame left: hashed from the pixels
    late = Sample(1.0, 0.0, True, frame=frame)
    late.release()
    with pytest.raises(StreamError, match="released"):
        late.rgb  # noqa: B018
    with pytest.raises(InputError, match="a frame or RGB"):
        Sample(0.0, 0.0, False)


def test_scaled_pixels_match_pyav_across_sizes_and_formats(tmp_path: Path) -> None:
    """The scaler kept per thread gives PyAV's own pixels, also when the frames' size or
    pixel format changes between calls (it is set up again, not reused wrongly)."""
    import threading

    from safestream.signals.video import scaled_pixels

    frames = []
    for i, (w, h) in enumerate([(1280, 720), (320, 240), (854, 480)]):
        path = tmp_path / f"{i}.mp4"
        encode(path, [known_frame(i, w, h)] * 2)
        frames.append(frames_of(path)[0])
    frames.append(frames[1].reformat(format="yuvj420p"))
    frames.append(frames[0].reformat(format="rgb24"))
    for frame in frames * 2:  # every size and format after every other
        cols, rows = frame.width // 4, frame.height // 4
        want = frame.to_ndarray(format="gray", width=cols, height=rows, interpolation="AREA")
        assert (scaled_pixels(frame, "gray", cols, rows) == want).all()
        assert (scaled_pixels(frame, "rgb24") == frame.to_ndarray(format="rgb24")).all()
        want = frame.to_ndarray(format="rgb24", width=96, height=40, interpolation="BILINEAR")
        assert (scaled_pixels(frame, "rgb24", 96, 40, "BILINEAR") == want).all()
    # One scaler per thread, format and interpolation, reused: a second thread gets its own.
    from safestream.signals import video

    mine = video._REFORMATTERS.by_format["gray", "AREA"]
    scaled_pixels(frames[0], "gray", 320, 180)
    assert video._REFORMATTERS.by_format["gray", "AREA"] is mine
    # The classifiers' bilinear stretch and the evidence's area scaling alternate on a
    # worker: each keeps its own scaler rather than setting one up again every time.
    bilinear = video._REFORMATTERS.by_format["rgb24", "BILINEAR"]
    assert bilinear is not video._REFORMATTERS.by_format["rgb24", "AREA"]
    theirs: list[object] = []
    worker = threading.Thread(
        target=lambda: (
            scaled_pixels(frames[0], "gray", 320, 180),
            theirs.append(video._REFORMATTERS.by_format["gray", "AREA"]),
        )
    )
    worker.start()
    worker.join()
    assert theirs and theirs[0] is not mine
