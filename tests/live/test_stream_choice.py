"""A live source with several video streams: the one players pick is sampled, not a decoy."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from safestream.live import Sampler, Source
from safestream.signals.pdq import pdq_from_rgb
from video_support import encode_tracks, known_frame, shots

FPS = 10


def test_the_largest_video_programme_is_sampled_not_the_first(tmp_path: Path) -> None:
    decoy = [np.full((64, 64, 3), 90, np.uint8)] * (3 * FPS)
    real = shots([known_frame(i) for i in (81, 82, 83)], 1, FPS)
    path = encode_tracks(
        tmp_path / "two.ts", decoy, real, fps=FPS, container_format="mpegts", preset="veryfast"
    )
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
