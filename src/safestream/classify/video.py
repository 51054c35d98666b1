"""Classify a video's sampled frames and decide with a temporal rule.

The frames are the ones :func:`~safestream.signals.video.hash_video` samples (one a
second by default, timestamps from the first frame), decoded a second time with
PyAV, scaled to at most :data:`DEFAULT_MAX_SIDE` pixels on the longer side, and scored
by every configured classifier (:func:`~safestream.classify.assess`). The result keeps:

* per category the highest score over the classified frames (``max_scores``: what a
  check verdict's ``scores`` holds, so the policy's ``min_scores`` rules apply as for
  an image);
* the frames with some category at or over ``score_threshold``, with timestamps;
* a temporal rule, as the live monitor uses (:class:`TemporalRule`): a category is
  *flagged* when at least ``min_flagged`` of some ``window`` consecutive classified
  frames score at or over the threshold (a video of fewer frames than ``window``:
  ``min_flagged`` of its frames, at least one). One stray frame does not flag.

At most ``max_frames`` frames are classified: beyond that the samples are thinned
evenly over the video, and "consecutive" means consecutive classified frames. Checks
hash and classify in one decode (:class:`FrameScorer` as ``hash_video``'s
``on_sample``, and its :meth:`FrameScorer.extra` as ``on_extra``); :func:`classify_video`
decodes on its own, the sampled frames only.

**Extra frames**: in checks, the frames a regular sample would miss are classified
too: scene changes between samples (a picture shown for less than the sampling
interval) and the samples of every other video stream (a second track players do not
show by default). At most ``max_extra_frames`` of them (thinned evenly). They count
towards ``max_scores`` and the over-threshold frames (marked ``scene_change`` or with
their ``stream_index``), not towards the temporal rule, which is about consecutive
regular samples.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from safestream.classify.base import (
    CATEGORIES,
    CategoryScores,
    Classifier,
    not_assessed,
    shared_stretch_size,
)
from safestream.errors import InputError
from safestream.signals.video import (
    DEFAULT_MAX_FRAME_PIXELS,
    SampledFrames,
    VideoError,
    frame_rgb,
    frame_rgb_stretched,
    open_video,
)

__all__ = [
    "DEFAULT_MAX_CLASSIFIED_FRAMES",
    "DEFAULT_MAX_SIDE",
    "FrameScorer",
    "FrameScores",
    "TemporalRule",
    "VideoClassification",
    "aggregate",
    "classify_video",
    "even_picks",
    "rule_window",
]

#: Frames are scaled so their longer side is at most this before classifying: the
#: bundled models take 224-320 px inputs, so more is decode and resize work for nothing.
#: Classifiers that all stretch their input to one size (``Classifier.stretch_size``:
#: opennsfw, stretching model cards) get frames scaled straight to that size instead.
DEFAULT_MAX_SIDE = 512
#: Most frames classified per video (10 minutes at one sample a second).
DEFAULT_MAX_CLASSIFIED_FRAMES = 600
#: Most over-threshold frames listed in an answer (the summary counts them all).
DEFAULT_MAX_LISTED_FRAMES = 50


@dataclass(frozen=True)
class TemporalRule:
    """``min_flagged`` of ``window`` consecutive frames at or over ``score_threshold``.

    The live monitor's defaults (5, 3, 0.8; 0.8 is opennsfw's calibrated threshold).
    """

    window: int = 5
    min_flagged: int = 3
    score_threshold: float = 0.8

    def __post_init__(self) -> None:
        if not 1 <= self.min_flagged <= self.window:
            raise InputError(
                f"the video rule needs 1 <= min_flagged <= window, got "
                f"min_flagged={self.min_flagged}, window={self.window}"
            )
        if not 0.0 <= self.score_threshold <= 1.0:
            raise InputError(
                f"the video score threshold must be in [0, 1], got {self.score_threshold}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "window": self.window,
            "min_flagged": self.min_flagged,
            "score_threshold": self.score_threshold,
        }


def rule_window(over: Sequence[bool], window: int, min_flagged: int) -> tuple[int, int] | None:
    """The first ``(start, end)`` frame indices where ``min_flagged`` of ``window`` hold.

    ``end`` is the frame at which the rule first holds (inclusive), ``start`` the first
    frame of that window. With fewer frames than ``window``, ``min_flagged`` of all of
    them (capped at their number, at least one). None when the rule never holds.
    """
    n = len(over)
    if n == 0:
        return None
    need = max(1, min(min_flagged, n))
    size = min(window, n)
    count = 0
    for end in range(n):
        count += over[end]
        if end >= size:
            count -= over[end - size]
        if count >= need:
            return max(0, end - size + 1), end
    return None


def even_picks(total: int, limit: int) -> frozenset[int]:
    """At most ``limit`` indices of ``range(total)``, spread evenly, first and last kept."""
    if total <= limit:
        return frozenset(range(total))
    if limit == 1:
        return frozenset({0})
    return frozenset(int(i) for i in np.linspace(0, total - 1, limit).round())


@dataclass(frozen=True)
class FrameScores:
    """The merged category scores of one classified frame."""

    #: Index of the frame among the decoded frames (as vPDQ numbers them).
    frame_number: int
    #: Seconds from the video's first frame.
    timestamp_s: float
    scores: CategoryScores
    #: Categories at or over the rule's threshold on this frame.
    over: tuple[str, ...]
    #: An extra frame's video stream (None: the stream players pick, a regular sample).
    stream_index: int | None = None
    #: An extra frame taken at a scene change between regular samples.
    scene_change: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (scores rounded; unassessed categories left out)."""
        out: dict[str, Any] = {
            "frame_number": self.frame_number,
            "timestamp_s": round(self.timestamp_s, 3),
            "scores": {k: round(v, 6) for k, v in self.scores.items() if v is not None},
            "over_threshold": list(self.over),
        }
        if self.stream_index is not None:
            out["stream_index"] = self.stream_index
        if self.scene_change:
            out["scene_change"] = True
        return out


@dataclass(frozen=True)
class VideoClassification:
    """Every classified frame's scores, and what they add up to."""

    models: tuple[str, ...]
    rule: TemporalRule
    #: Frames classified, in time order.
    frames: tuple[FrameScores, ...]
    #: Frames sampled (the classified ones are all of them, or an even subset).
    frames_sampled: int
    #: Category -> highest score over the frames (None: no model assesses it).
    max_scores: CategoryScores
    #: Categories for which the temporal rule holds, in :data:`CATEGORIES` order.
    flagged_categories: tuple[str, ...]
    #: Category -> (start, end) timestamps of the first window where the rule held.
    flagged_spans_s: dict[str, tuple[float, float]]
    #: Extra frames classified (scene changes, other video streams), in time order.
    extra_frames: tuple[FrameScores, ...] = ()

    @property
    def flagged(self) -> bool:
        """The temporal rule holds for some category."""
        return bool(self.flagged_categories)

    def frames_over(self) -> list[FrameScores]:
        """The frames (extra ones too) with some category at or over the threshold, by time."""
        return sorted(
            (f for f in (*self.frames, *self.extra_frames) if f.over),
            key=lambda f: f.timestamp_s,
        )

    def answer_frames(self, limit: int = DEFAULT_MAX_LISTED_FRAMES) -> list[dict[str, Any]]:
        """Over-threshold frames for an answer: the ``limit`` highest-scoring, by time."""
        over = self.frames_over()
        if len(over) > limit:
            top = sorted(over, key=lambda f: -max(v for v in f.scores.values() if v is not None))
            keep = {id(f) for f in top[:limit]}
            over = [f for f in over if id(f) in keep]
        return [f.to_dict() for f in over]

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: counts, max scores, the rule and what it flagged."""
        return {
            "models": list(self.models),
            "classified_frames": len(self.frames),
            "extra_classified_frames": len(self.extra_frames),
            "sampled_frames": self.frames_sampled,
            "frames_over_threshold": len(self.frames_over()),
            "max_scores": {
                k: None if v is None else round(v, 6) for k, v in self.max_scores.items()
            },
            "rule": self.rule.to_dict(),
            "flagged": self.flagged,
            "flagged_categories": list(self.flagged_categories),
            "flagged_spans_s": {
                k: [round(a, 3), round(b, 3)] for k, (a, b) in self.flagged_spans_s.items()
            },
        }

    def reasons(self) -> list[str]:
        """One line per flagged category, for a verdict's reasons."""
        n, k = self.rule.window, self.rule.min_flagged
        return [
            f"classifier: {c} >= {self.rule.score_threshold:g} in {k} of {n} consecutive "
            f"sampled frames ({a:.1f}-{b:.1f} s)"
            for c in self.flagged_categories
            for a, b in [self.flagged_spans_s[c]]
        ]


def aggregate(
    frames: Sequence[FrameScores],
    *,
    models: tuple[str, ...],
    rule: TemporalRule,
    frames_sampled: int,
    extra: Sequence[FrameScores] = (),
) -> VideoClassification:
    """Max scores per category (extra frames too) and the temporal rule over ``frames``."""
    max_scores = not_assessed()
    for f in (*frames, *extra):
        for category, value in f.scores.items():
            if value is None:
                continue
            current = max_scores.get(category)
            max_scores[category] = value if current is None else max(current, value)
    flagged: list[str] = []
    spans: dict[str, tuple[float, float]] = {}
    for category in CATEGORIES:
        hit = rule_window([category in f.over for f in frames], rule.window, rule.min_flagged)
        if hit is not None:
            flagged.append(category)
            spans[category] = (frames[hit[0]].timestamp_s, frames[hit[1]].timestamp_s)
    return VideoClassification(
        models=models,
        rule=rule,
        frames=tuple(frames),
        frames_sampled=frames_sampled,
        max_scores=max_scores,
        flagged_categories=tuple(flagged),
        flagged_spans_s=spans,
        extra_frames=tuple(sorted(extra, key=lambda f: f.timestamp_s)),
    )


class FrameScorer:
    """Scores sampled frames as they are decoded; :meth:`result` aggregates them.

    Call it with each sampled frame, ``(sample index, frame number, seconds, frame)``:
    it fits :func:`~safestream.signals.video.hash_video`'s ``on_sample``, so that one
    decode both hashes and classifies. At most ``max_frames`` frames are scored: evenly
    picked when ``expected_samples`` says how many will come (an estimate is fine),
    else every other scored frame is dropped each time the count passes the cap (even
    spacing too, at up to twice the classifier work).
    """

    def __init__(
        self,
        classifiers: Sequence[Classifier],
        *,
        rule: TemporalRule | None = None,
        max_frames: int = DEFAULT_MAX_CLASSIFIED_FRAMES,
        expected_samples: int | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        max_extra_frames: int | None = None,
    ) -> None:
        if not classifiers:
            raise InputError("classifying a video needs at least one classifier")
        if max_frames < 1:
            raise InputError(f"max_frames must be at least 1, got {max_frames}")
        self.classifiers = tuple(classifiers)
        self.rule = rule or TemporalRule()
        self.max_frames = max_frames
        self.max_side = max_side
        #: Classifiers that all stretch to one size get frames scaled straight to it
        #: (one resample instead of two); others get frames at ``max_side``.
        self.stretch_size = shared_stretch_size(self.classifiers)
        self.expected = expected_samples
        self.picks = (
            even_picks(expected_samples, max_frames)
            if expected_samples is not None and expected_samples > max_frames
            else None
        )
        self.stride = 1  # used without picks: keep samples whose index is a multiple of it
        self.kept: list[tuple[int, FrameScores]] = []
        #: Extra frames (scene changes, other streams): at most this many, half the
        #: regular cap by default.
        self.max_extra = max(1, max_frames // 2) if max_extra_frames is None else max_extra_frames
        self.extra_seen = 0
        self.extra_stride = 1
        self.extras: list[tuple[int, FrameScores]] = []

    def _pixels(self, frame: Any) -> Any:
        """The frame's RGB as the classifiers take it."""
        if self.stretch_size is not None:
            return frame_rgb_stretched(frame, *self.stretch_size)
        return frame_rgb(frame, self.max_side)

    def __call__(self, index: int, number: int, t: float, frame: Any) -> None:
        from safestream.classify import assess

        if self.picks is not None and self.expected is not None and index >= self.expected:
            # More samples than expected (an estimate from the header): go on by stride.
            self.picks, self.stride = None, -(-self.expected // self.max_frames)
        if self.picks is not None:
            if index not in self.picks:
                return
        elif index % self.stride:
            return
        _, scores = assess(self.classifiers, self._pixels(frame))
        threshold = self.rule.score_threshold
        over = tuple(c for c in CATEGORIES if (v := scores.get(c)) is not None and v >= threshold)
        self.kept.append((index, FrameScores(number, t, scores, over)))
        while self.picks is None and len(self.kept) > self.max_frames:
            # Every other kept frame, and half as many from here on: still evenly spread.
            self.stride *= 2
            self.kept = self.kept[::2]

    def extra(
        self, stream_index: int | None, number: int, t: float, frame: Any, scene_change: bool
    ) -> None:
        """Score an extra frame: a scene change between samples, or another stream's frame.

        It fits ``hash_video``'s ``on_extra``. At most ``max_extra_frames`` are kept:
        past the cap, every other kept one is dropped and half as many are scored from
        then on (evenly spread, at up to twice the classifier work).
        """
        from safestream.classify import assess

        seen = self.extra_seen
        self.extra_seen += 1
        if self.max_extra <= 0 or seen % self.extra_stride:
            return
        _, scores = assess(self.classifiers, self._pixels(frame))
        threshold = self.rule.score_threshold
        over = tuple(c for c in CATEGORIES if (v := scores.get(c)) is not None and v >= threshold)
        self.extras.append((seen, FrameScores(number, t, scores, over, stream_index, scene_change)))
        while len(self.extras) > self.max_extra:
            self.extra_stride *= 2
            self.extras = [(i, f) for i, f in self.extras if i % self.extra_stride == 0]

    def result(self, frames_sampled: int) -> VideoClassification:
        """The aggregate over the scored frames (``frames_sampled``: how many were sampled)."""
        return aggregate(
            [f for _, f in self.kept],
            models=tuple(c.name for c in self.classifiers),
            rule=self.rule,
            frames_sampled=frames_sampled,
            extra=[f for _, f in self.extras],
        )


def classify_video(
    source: Path | IO[bytes] | bytes,
    classifiers: Sequence[Classifier],
    *,
    rule: TemporalRule | None = None,
    sample_fps: float | None = 1.0,
    max_frames: int = DEFAULT_MAX_CLASSIFIED_FRAMES,
    expected_samples: int | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    max_duration_s: float | None = None,
    name: str | None = None,
) -> VideoClassification:
    """Classify the frames ``hash_video`` samples and aggregate them (module docstring).

    A decode of its own; to hash and classify in one decode pass a :class:`FrameScorer`
    as ``hash_video(..., on_sample=scorer)``. Limits and bad input raise the same
    :class:`~safestream.signals.video.VideoError` kinds as ``hash_video``.
    """
    scorer = FrameScorer(
        classifiers,
        rule=rule,
        max_frames=max_frames,
        expected_samples=expected_samples,
        max_side=max_side,
    )
    if sample_fps is not None and not sample_fps > 0:
        raise InputError(f"sample_fps must be > 0 (or None for every frame), got {sample_fps}")
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(bytes(source))
    what = name or (str(source) if isinstance(source, Path) else "video")
    if isinstance(source, Path) and not source.is_file():
        raise VideoError(f"{what}: no such file")
    container = open_video(source, what)
    try:
        # The frames hash_video samples (same count, same timestamps).
        sampled = SampledFrames(
            container,
            what,
            sample_fps=sample_fps,
            max_frame_pixels=max_frame_pixels,
            max_duration_s=max_duration_s,
        )
        for index, (number, t, frame) in enumerate(sampled):
            scorer(index, number, t, frame)
    finally:
        container.close()
    return scorer.result(sampled.sampled)
