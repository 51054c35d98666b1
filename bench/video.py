"""Video sampling cost: keyframe-aware 1 sample/s vs full decode + per-frame PDQ.

Encodes a synthetic 720p30 H.264 video (moving shapes over photo-like backgrounds; never
real material) with PyAV, then measures CPU seconds (all threads) for:

* ``every-frame``: decode every frame and ``pdqhash`` each at full size (what a
  per-frame vPDQ does);
* ``file 1/s``: :func:`safestream.signals.video.hash_video` at 1 frame/s, full size;
* ``live 1/s``: the monitor's :class:`Sampler` at 1 frame/s (lazy, I/P chain), each sample
  hashed by ``Sample.pdq()`` (the full-size frame's PDQ from its luma),
  plus PDQ of each sample (keyframes only when the GOP allows it).

Each is reported as seconds of video per CPU second: how many real-time streams one
core sustains for that step alone (no bank lookup, no classifier).

``--classify`` also checks an upload with the default classifier (``opennsfw``) as
the API did at first (``hash_video`` then ``classify_video``: two decodes) and as it
does now (one decode: a ``FrameScorer`` as ``hash_video``'s ``on_sample``).

    .venv/bin/python bench/video.py --seconds 20 --gop 2 1 [--classify]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import pdqhash

from safestream.live.ingest import Sampler, Source
from safestream.signals.synthetic import write_synthetic_video
from safestream.signals.video import hash_video

FPS = 30
W, H = 1280, 720


def every_frame(path: Path) -> int:
    n = 0
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        for frame in c.decode(video=0):
            pdqhash.compute(frame.to_ndarray(format="rgb24"))
            n += 1
    return n


def live(path: Path) -> tuple[int, int, bool]:
    container = Source(url=str(path)).open()
    sampler = Sampler(1.0)
    try:
        for sample in sampler.samples(container):
            sample.pdq()
    finally:
        container.close()
    return sampler.stats.samples, sampler.stats.frames_decoded, sampler.stats.keyframe_mode


def cpu(fn, *args):  # type: ignore[no-untyped-def]
    t0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return time.process_time() - t0, time.perf_counter() - w0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--gop", type=float, nargs="+", default=[2.0, 1.0])
    ap.add_argument("--classify", action="store_true", help="also hash + classify (opennsfw)")
    args = ap.parse_args()
    print(f"720p30 H.264, {args.seconds} s per video; figures: video s per CPU s (= streams/core)")
    print("| GOP | method | samples | frames decoded | CPU s | video s / CPU s | vs every-frame |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as d:
        for gop in args.gop:
            path = Path(d) / f"gop{gop}.ts"
            write_synthetic_video(path, args.seconds, gop)
            c_all, _, n_all = cpu(every_frame, path)
            c_file, _, h = cpu(hash_video, path)
            c_live, _, (n_live, dec_live, kf) = cpu(live, path)
            rows = [
                ("every-frame pdqhash", n_all, n_all, c_all),
                ("file 1/s (full size)", h.frames_sampled, h.frames_decoded, c_file),
                (
                    f"live 1/s (luma PDQ{', keyframes only' if kf else ''})",
                    n_live,
                    dec_live,
                    c_live,
                ),
            ]
            for name, samples, decoded, c in rows:
                print(
                    f"| {gop:g} s | {name} | {samples} | {decoded} | {c:.2f} | "
                    f"{args.seconds / c:.1f} | {c_all / c:.1f}x |"
                )
            if args.classify:
                print_classify(path, gop)


def print_classify(path: Path, gop: float) -> None:
    """Hash + classify an upload: two decodes (before) vs one (now), least of 3 runs."""
    from safestream.classify import load_classifier
    from safestream.classify.video import FrameScorer, classify_video

    model = load_classifier("opennsfw")

    def two() -> object:
        h = hash_video(path)
        return classify_video(path, [model], expected_samples=h.frames_sampled).max_scores

    def one() -> object:
        scorer = FrameScorer([model])
        h = hash_video(path, on_sample=scorer)
        return scorer.result(h.frames_sampled).max_scores

    c_two = min(cpu(two)[0] for _ in range(3))
    c_one = min(cpu(one)[0] for _ in range(3))
    print(
        f"| {gop:g} s | hash + opennsfw, two decodes -> one | — | — | "
        f"{c_two:.2f} -> {c_one:.2f} | — | {c_one / c_two:.2f}x |"
    )


if __name__ == "__main__":
    main()
