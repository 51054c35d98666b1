"""A live source with several video streams: the one players pick is sampled, not a decoy."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from safestream.live import Sampler, Source
from safestream.signals.pdq import pdq_from_rgb
from video_support import known_frame, shots

FPS = 10


def test_the_largest_video_programme_is_sampled_not_the_first(tmp_path: Path) -> None:
    decoy = [np.full((64, 64, 3), 90, np.uint8)] * (3 * FPS)
    real = shots([known_frame(i) for i in (81, 82, 83)], 1, FPS)
    path = tmp_path / "two.ts"
    with av.open(str(path), "w", format="mpegts") as out:
        streams = []
        for frames in (decoy, real):
            h, w = frames[0].shape[:2]
            s = out.add_stream("libx264", rate=FPS)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.options = {"preset": "veryfast", "g": str(FPS)}
            streams.append((s, frames))
        for i in range(len(real)):
            for s, frames in streams:
                frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, FPS)
                for packet in s.encode(frame):
                    out.mux(packet)
        for s, _ in streams:
            for packet in s.encode():
                out.mux(packet)
    container = Source(url=str(path)).open()
    sampler = Sampler(1.0)
    try:
        samples = list(sampler.samples(container, stop=threading.Event()))
        assert sampler.stream_index == container.streams.video[1].index
    finally:
        container.close()
    assert [s.rgb.shape for s in samples] == [(240, 320, 3)] * 3
    for sample, k in zip(samples, (81, 82, 83), strict=True):
        distance = bin(int(sample.pdq()[0], 16) ^ int(pdq_from_rgb(known_frame(k))[0], 16))
        assert distance.count("1") <= 16
