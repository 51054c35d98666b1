"""The live monitor: streams -> samples -> engine (and classifier) -> temporal policy -> actions.

One thread per stream demuxes and samples (:mod:`safestream.live.ingest`); samples go to
one :class:`WorkerPool` shared by every stream, which hashes each sample, looks it up in
every enabled bank through the same :class:`Engine` as uploads, and scores it with the
classifier when one is configured. A per-stream :class:`TemporalPolicy` turns results
into a verdict: any bank match, or ``k`` of the last ``n`` samples scoring over a
threshold. A verdict fires its actions once per stream. Every step is reported as an
event (a JSON-ready dict) to ``on_event``.

A stream that fails (cannot be opened, corrupt, hostile) ends with an ``error`` event;
the other streams carry on.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from safestream.engine.check import Engine
from safestream.engine.verdict import Match
from safestream.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    SafestreamError,
    error_kind,
)
from safestream.live.ingest import (
    DEFAULT_LOOP_FILTER_SKIP,
    MAX_LIVE_VIDEO_STREAMS,
    STRATEGIES,
    Sample,
    Sampler,
    Source,
    SourceSampler,
    StreamContext,
    StreamError,
)
from safestream.live.pool import WorkerPool
from safestream.signals.pdq import DEFAULT_MIN_QUALITY

log = logging.getLogger(__name__)

RGB = npt.NDArray[np.uint8]
Scorer = Callable[[RGB], Mapping[str, float | None]]
Event = dict[str, Any]
#: Called for each action fired; may return what it did (a mapping or an object with
#: ``to_dict()``), which the stream's listing shows.
ActionCallback = Callable[["ActionRequest"], object]

#: Actions the monitor knows; ``end_stream`` also stops reading the stream.
ACTIONS = ("end_stream", "obscure", "warn", "open_case")


@dataclass(frozen=True)
class SampleResult:
    """What the engine and the classifier said about one sample."""

    stream_time_s: float
    arrived_at: float
    pdq: str
    quality: int
    matches: tuple[Match, ...]
    scores: Mapping[str, float | None] | None
    finished_at: float
    #: The container's index of the video stream the sample is from.
    stream_index: int = 0

    @property
    def latency_ms(self) -> float:
        """Frame arrival to result, in milliseconds."""
        return 1000.0 * (self.finished_at - self.arrived_at)


class SampleAnalyzer:
    """Hashes a frame, looks it up in every enabled bank, scores it (optional)."""

    def __init__(
        self,
        engine: Engine | None,
        scorer: Scorer | None = None,
        *,
        min_quality: int = DEFAULT_MIN_QUALITY,
        scorer_size: tuple[int, int] | None = None,
    ) -> None:
        if scorer_size is not None and (
            len(scorer_size) != 2 or min(scorer_size) < 1 or max(scorer_size) > 4096
        ):
            raise InputError(f"scorer_size must be (width, height) in 1..4096, got {scorer_size!r}")
        self.engine = engine
        self.scorer = scorer
        self.min_quality = min_quality
        #: (width, height) the scorer's classifiers stretch every image to first
        #: (:func:`safestream.classify.shared_stretch_size`): frames are scaled to it in
        #: one resample; None: the scorer gets the sample's RGB at ``max_side``.
        self.scorer_size = scorer_size

    def warm_up(self) -> None:
        """Run one lookup so the index's compiled kernels are ready before the first sample."""
        if self.engine is not None:
            from safestream.index.pdq_index import warm_up

            warm_up()
            self.engine.lookup_hits("pdq", "0" * 64)

    def analyse(self, sample: Sample) -> SampleResult:
        """Result for one sample (database read only when the index hit something)."""
        pdq, quality = sample.pdq()
        matches: tuple[Match, ...] = ()
        if self.engine is not None and quality >= self.min_quality:
            hits = self.engine.lookup_hits("pdq", pdq)
            if hits:
                resolved = self.engine.resolve(hits)
                if not any(m.is_allow_list for m in resolved):
                    matches = tuple(resolved)
        scores = None
        if self.scorer is not None:
            size = self.scorer_size
            image = sample.rgb if size is None else sample.rgb_stretched(*size)
            scores = dict(self.scorer(image))
        return SampleResult(
            sample.stream_time_s,
            sample.arrived_at,
            pdq,
            quality,
            matches,
            scores,
            time.monotonic(),
            sample.stream_index,
        )


@dataclass(frozen=True)
class TemporalPolicy:
    """When a stream's recent samples make a verdict, and what it triggers.

    A bank match on any sample gives ``match``; ``min_flagged`` of the last ``window``
    samples with a category score at or over ``score_threshold`` give ``classifier``.
    """

    window: int = 5
    min_flagged: int = 3
    score_threshold: float = 0.8
    #: Categories that count (None: any category the classifier scores).
    categories: tuple[str, ...] | None = None
    match_actions: tuple[str, ...] = ("end_stream", "open_case")
    classifier_actions: tuple[str, ...] = ("obscure", "warn", "open_case")

    def __post_init__(self) -> None:
        if not 1 <= self.min_flagged <= self.window:
            raise InputError("need 1 <= min_flagged <= window")
        for name in (*self.match_actions, *self.classifier_actions):
            if name not in ACTIONS:
                raise InputError(f"unknown live action {name!r}; known: {', '.join(ACTIONS)}")

    def flagged(self, scores: Mapping[str, float | None] | None) -> bool:
        """Whether one sample's scores count towards the classifier rule."""
        if not scores:
            return False
        return any(
            v is not None
            and v >= self.score_threshold
            and (self.categories is None or k in self.categories)
            for k, v in scores.items()
        )


@dataclass(frozen=True)
class ActionRequest:
    """An action to take on a stream, with the stream's context and the evidence."""

    action: str
    verdict: str
    context: StreamContext
    source: str
    #: Stream timestamps (seconds) of the samples that triggered the verdict.
    sample_times_s: tuple[float, ...]
    matches: tuple[Match, ...]
    #: PNG bytes of the triggering frames, for evidence only (held in memory, not logged).
    evidence_png: tuple[bytes, ...] = ()
    #: PDQ (hex) of each triggering frame, in the order of ``sample_times_s``.
    frame_pdqs: tuple[str, ...] = ()
    #: Classifier scores of each triggering frame (None where no classifier ran).
    frame_scores: tuple[Mapping[str, float | None] | None, ...] = ()
    #: The source's video stream (container index) of each triggering frame.
    frame_streams: tuple[int, ...] = ()
    #: When the verdict was reached (UTC).
    detected_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the evidence frames)."""
        return {
            "action": self.action,
            "verdict": self.verdict,
            "context": self.context.to_dict(),
            "source": self.source,
            "sample_times_s": [round(t, 3) for t in self.sample_times_s],
            "sample_streams": list(self.frame_streams),
            "matches": [m.to_dict() for m in self.matches],
            "evidence_frames": len(self.evidence_png),
            "detected_at": self.detected_at.isoformat(),
        }


def _png(rgb: RGB) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class StreamMetrics:
    """Per-stream counters."""

    samples: int = 0
    results: int = 0
    matches: int = 0
    dropped: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    started_at: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        lat = sorted(self.latencies_ms)
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        return {
            "samples": self.samples,
            "results": self.results,
            "samples_per_s": round(self.results / elapsed, 3),
            "matches": self.matches,
            "dropped": self.dropped,
            "latency_p50_ms": round(lat[len(lat) // 2], 1) if lat else None,
            "latency_p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1)
            if lat
            else None,
        }


class StreamSession:
    """One monitored stream: its reading thread, its policy state and its metrics."""

    def __init__(
        self,
        monitor: Monitor,
        source: Source,
        context: StreamContext,
        *,
        sample_fps: float | None = None,
        actions: frozenset[str] | None = None,
    ) -> None:
        self.monitor = monitor
        self.source = source
        self.context = context
        #: This stream's samples per second (default: the monitor's).
        self.sample_fps = monitor.sample_fps if sample_fps is None else sample_fps
        #: Actions this stream's verdicts may take (None: all the policy names).
        self.allowed_actions = actions
        self.metrics = StreamMetrics()
        self.stop_event = threading.Event()
        self.ended_by: str | None = None
        self.error: str | None = None
        #: Why the last connection ended, while a network source is being retried.
        self.last_error: str | None = None
        #: One timeline across reconnects: a new connection's times start where the last
        #: sample was, plus the time the stream was away (a publisher that comes back
        #: starts its timestamps again; the session's times never go back).
        self._time_offset = 0.0
        self._last_time: float | None = None
        self._last_arrival = 0.0
        self._lock = threading.Lock()
        self._recent: deque[tuple[bool, SampleResult, RGB | None]] = deque(
            maxlen=monitor.policy.window
        )
        self._fired: set[str] = set()
        self.sampler: SourceSampler | None = None
        #: Set once the reading thread has finished (after its last event).
        self.finished = threading.Event()
        #: Actions fired on this stream: name, verdict and sample times.
        self.actions_fired: list[dict[str, Any]] = []
        self.thread = threading.Thread(
            target=self._run, name=f"safestream-stream-{context.stream_id}", daemon=True
        )

    @property
    def stream_id(self) -> str:
        """The stream's id."""
        return self.context.stream_id

    @property
    def done(self) -> bool:
        """The stream has ended and its reading thread has finished."""
        return self.finished.is_set()

    @property
    def state(self) -> str:
        """``running``, ``stopping``, ``ended`` or ``failed``."""
        if self.done:
            return "failed" if self.error else "ended"
        return "stopping" if self.stop_event.is_set() else "running"

    def stop(self, reason: str = "stopped") -> None:
        """Stop reading this stream (the thread exits at the next packet)."""
        if self.ended_by is None:
            self.ended_by = reason
        self.stop_event.set()

    # -- reading ---------------------------------------------------------------

    def _run(self) -> None:
        m = self.monitor
        m.emit(
            {
                "event": "stream_start",
                "stream_id": self.stream_id,
                "source": self.source.describe(),
                "context": self.context.to_dict(),
            }
        )
        attempt = 0
        try:
            while not self.stop_event.is_set():
                before = self.metrics.samples
                try:
                    self._read_once()
                    # A network source that ends was most likely dropped: reconnect.
                    if not self.source.reconnect or self.stop_event.is_set():
                        break
                    if attempt >= self.source.max_reconnects and self.metrics.samples == before:
                        break
                    reason = "end of stream"
                except StreamError as exc:
                    if self.stop_event.is_set():
                        # Stopped while a read was blocked (an idle stream): FFmpeg's
                        # "immediate exit" is the stop asked for, not the stream's error.
                        break
                    if not self.source.reconnect or (
                        attempt >= self.source.max_reconnects and self.metrics.samples == before
                    ):
                        raise
                    reason = str(exc)
                # The count of tries starts again once a connection delivered samples.
                self.last_error = reason
                attempt = 1 if self.metrics.samples > before else attempt + 1
                delay = min(10.0, self.source.reconnect_delay_s * 2 ** (attempt - 1))
                m.emit(
                    {
                        "event": "reconnect",
                        "stream_id": self.stream_id,
                        "attempt": attempt,
                        "delay_s": delay,
                        "error": reason,
                    }
                )
                if self.stop_event.wait(delay):
                    break
        except SafestreamError as exc:
            self.error = str(exc)
            m.emit(
                {
                    "event": "error",
                    "stream_id": self.stream_id,
                    "error": error_kind(exc),
                    "message": str(exc),
                }
            )
        except Exception as exc:  # a hostile stream must never take the monitor down
            log.exception("stream %s failed", self.stream_id)
            self.error = f"{type(exc).__name__}: {exc}"
            m.emit(
                {
                    "event": "error",
                    "stream_id": self.stream_id,
                    "error": "internal",
                    "message": self.error,
                }
            )
        finally:
            self.metrics.dropped = m.pool.dropped(self.stream_id)
            m.emit(
                {
                    "event": "stream_end",
                    "stream_id": self.stream_id,
                    "ended_by": self.ended_by or ("error" if self.error else "eof"),
                    "metrics": self.metrics_dict(),
                }
            )
            self.finished.set()
            m._finished(self)

    def metrics_dict(self) -> dict[str, Any]:
        """The stream's counters with its decoder's (JSON-ready)."""
        stats = self.sampler.stats if self.sampler is not None else None
        return {
            **self.metrics.to_dict(),
            "video_streams": len(self.sampler.samplers) if self.sampler is not None else 0,
            "frames_decoded": stats.frames_decoded if stats else 0,
            "packets_skipped": stats.packets_skipped if stats else 0,
            "packets_unreferenced": stats.unreferenced if stats else 0,
            "b_references_skipped": stats.b_references_skipped if stats else 0,
            "chain_fallback_reason": stats.chain_fallback_reason if stats else None,
            "timestamp_discontinuities": stats.timestamp_discontinuities if stats else 0,
            "samples_by_frame_count": stats.samples_by_frame_count if stats else 0,
        }

    def _read_once(self) -> None:
        container = self.source.open(stop=self.stop_event)
        if self._last_time is not None:
            away = max(0.0, time.monotonic() - self._last_arrival)
            self._time_offset = self._last_time + max(away, 1.0 / self.sample_fps)
        m = self.monitor
        sampler = SourceSampler(
            functools.partial(
                Sampler,
                self.sample_fps,
                max_side=m.max_side,
                strategy=m.strategy,
                drop_unreferenced=m.drop_unreferenced,
                skip_loop_filter=m.skip_loop_filter,
                decoder_threads=m.decoder_threads,
                ip_chain=m.ip_chain,
                early_drain=m.early_drain,
            ),
            video_streams=m.video_streams,
            max_video_streams=m.max_video_streams,
        )
        self.sampler = sampler
        try:
            for sample in sampler.samples(
                container,
                stop=self.stop_event,
                realtime=self.source.realtime,
                speed=self.source.speed,
                what=f"stream {self.stream_id}",
            ):
                self.metrics.samples += 1
                sample.stream_time_s += self._time_offset
                self._last_time, self._last_arrival = sample.stream_time_s, sample.arrived_at
                self.monitor.pool.submit(self.stream_id, functools.partial(self._analyse, sample))
        except StreamError:
            raise
        except Exception as exc:
            av = __import__("av")
            if isinstance(exc, av.error.FFmpegError | OSError):
                raise StreamError(f"stream {self.stream_id}: {type(exc).__name__}: {exc}") from exc
            raise
        finally:
            container.close()

    # -- results (worker threads) ------------------------------------------------

    def _analyse(self, sample: Sample) -> None:
        if self.ended_by == "end_stream":
            return  # the stream was ended: its remaining samples need no work
        result = self.monitor.analyzer.analyse(sample)
        # Pixels are kept (for evidence) only for samples that matched or were flagged.
        keep = bool(result.matches) or self.monitor.policy.flagged(result.scores)
        rgb = sample.rgb if keep else None
        sample.release()
        self._on_result(result, rgb)

    def _on_result(self, result: SampleResult, rgb: RGB | None) -> None:
        policy = self.monitor.policy
        fire: list[tuple[str, str, tuple[SampleResult, ...], tuple[RGB, ...]]] = []
        with self._lock:
            self.metrics.results += 1
            self.metrics.latencies_ms.append(result.latency_ms)
            if result.matches:
                self.metrics.matches += 1
            flagged = policy.flagged(result.scores)
            self._recent.append((flagged, result, rgb))
            verdict = None
            if result.matches:
                verdict = "match"
                shown = (rgb,) if rgb is not None else ()
                fire = [(a, "match", (result,), shown) for a in policy.match_actions]
            elif sum(f for f, _, _ in self._recent) >= policy.min_flagged:
                verdict = "classifier"
                results = tuple(r for f, r, _ in self._recent if f)
                frames = tuple(x for f, _, x in self._recent if f and x is not None)
                fire = [(a, "classifier", results, frames) for a in policy.classifier_actions]
            fire = [
                x
                for x in fire
                if x[0] not in self._fired
                and (self.allowed_actions is None or x[0] in self.allowed_actions)
            ]
            self._fired.update(x[0] for x in fire)
        self.monitor.emit(
            {
                "event": "sample",
                "stream_id": self.stream_id,
                "stream_time_s": round(result.stream_time_s, 3),
                "stream_index": result.stream_index,
                "verdict": verdict or "no_match",
                "quality": result.quality,
                "matches": [m.to_dict() for m in result.matches],
                "scores": dict(result.scores) if result.scores is not None else None,
                "actions": [a for a, *_ in fire],
                "latency_ms": round(result.latency_ms, 1),
            }
        )
        for action, kind, results, frames in fire:
            request = ActionRequest(
                action=action,
                verdict=kind,
                context=self.context,
                source=self.source.describe(),
                sample_times_s=tuple(r.stream_time_s for r in results),
                matches=result.matches if kind == "match" else (),
                evidence_png=tuple(_png(f) for f in frames) if action == "open_case" else (),
                frame_pdqs=tuple(r.pdq for r in results),
                frame_scores=tuple(r.scores for r in results),
                frame_streams=tuple(r.stream_index for r in results),
            )
            self.monitor._act(self, request)


class Monitor:
    """Monitors many streams with one shared worker pool.

    ``strategy``, ``drop_unreferenced``, ``ip_chain``, ``early_drain``,
    ``skip_loop_filter`` and ``decoder_threads`` say how each stream is decoded (see
    :class:`~safestream.live.ingest.Sampler`); ``video_streams`` and
    ``max_video_streams`` which of a source's video streams are sampled (see
    :class:`~safestream.live.ingest.SourceSampler`: by default every one, at most 8).
    """

    def __init__(
        self,
        analyzer: SampleAnalyzer,
        *,
        policy: TemporalPolicy | None = None,
        sample_fps: float = 1.0,
        workers: int | None = None,
        per_stream_queue: int = 2,
        max_side: int | None = 512,
        on_event: Callable[[Event], None] | None = None,
        actions: Mapping[str, ActionCallback] | None = None,
        strategy: str = "lazy",
        keep_ended: int = 1000,
        silenced: Callable[[StreamContext], bool] | None = None,
        drop_unreferenced: bool = True,
        skip_loop_filter: str = DEFAULT_LOOP_FILTER_SKIP,
        decoder_threads: int = 1,
        ip_chain: bool = True,
        early_drain: bool = True,
        video_streams: str = "all",
        max_video_streams: int = MAX_LIVE_VIDEO_STREAMS,
    ) -> None:
        if strategy not in STRATEGIES:
            raise InputError(
                f"unknown decoding strategy {strategy!r}; known: {', '.join(STRATEGIES)}"
            )
        # Bad decoder settings fail here, not later in every stream's thread.
        Sampler(
            sample_fps,
            strategy=strategy,
            drop_unreferenced=drop_unreferenced,
            skip_loop_filter=skip_loop_filter,
            decoder_threads=decoder_threads,
        )
        SourceSampler(Sampler, video_streams=video_streams, max_video_streams=max_video_streams)
        self.video_streams = video_streams
        self.max_video_streams = max_video_streams
        self.strategy = strategy
        self.drop_unreferenced = drop_unreferenced
        self.skip_loop_filter = skip_loop_filter
        self.decoder_threads = decoder_threads
        self.ip_chain = ip_chain
        self.early_drain = early_drain
        #: Ended streams kept for listing; the oldest are forgotten beyond this.
        self.keep_ended = keep_ended
        self.analyzer = analyzer
        # Compiling the index kernels takes seconds: do it now, not on the first sample.
        analyzer.warm_up()
        self.policy = policy or TemporalPolicy()
        self.sample_fps = sample_fps
        self.max_side = max_side
        self.pool = WorkerPool(workers, per_stream=per_stream_queue)
        self.on_event = on_event
        self.callbacks = dict(actions or {})
        #: True when the streamer must not be told (a non-disclosure order): ``warn``
        #: is then suppressed, and recorded as suppressed.
        self.silenced = silenced
        unknown = set(self.callbacks) - set(ACTIONS)
        if unknown:
            raise InputError(f"unknown live actions: {', '.join(sorted(unknown))}")
        self._lock = threading.Lock()
        self._sessions: dict[str, StreamSession] = {}
        self._active = 0
        self._idle = threading.Condition(self._lock)
        self._emit_lock = threading.Lock()

    def emit(self, event: Event) -> None:
        """Report an event (serialised: callbacks never run concurrently)."""
        if self.on_event is not None:
            with self._emit_lock:
                self.on_event(event)

    def add(
        self,
        source: Source,
        context: StreamContext,
        *,
        sample_fps: float | None = None,
        actions: frozenset[str] | None = None,
    ) -> StreamSession:
        """Start monitoring a stream (``sample_fps`` and ``actions`` override the monitor's)."""
        if sample_fps is not None and not sample_fps > 0:
            raise InputError(f"sample_fps must be > 0, got {sample_fps}")
        unknown = set(actions or ()) - set(ACTIONS)
        if unknown:
            raise InputError(
                f"unknown live actions: {', '.join(sorted(unknown))}; known: {', '.join(ACTIONS)}"
            )
        with self._lock:
            old = self._sessions.get(context.stream_id)
            if old is not None and not old.done:
                raise ConflictError(
                    f"stream {context.stream_id!r} is already monitored; stop it first "
                    "or choose another stream id"
                )
            ended = [k for k, v in self._sessions.items() if v.done]
            for k in ended[: max(0, len(ended) - self.keep_ended)]:
                del self._sessions[k]
            self._sessions.pop(context.stream_id, None)  # re-added: listed last
            session = StreamSession(self, source, context, sample_fps=sample_fps, actions=actions)
            self._sessions[context.stream_id] = session
            self._active += 1
        session.thread.start()
        return session

    def stop(self, stream_id: str) -> None:
        """Stop monitoring a stream."""
        with self._lock:
            session = self._sessions.get(stream_id)
        if session is None:
            raise NotFoundError(f"no monitored stream {stream_id!r}")
        session.stop()

    def session(self, stream_id: str) -> StreamSession:
        """One stream's session (NotFoundError when unknown)."""
        with self._lock:
            session = self._sessions.get(stream_id)
        if session is None:
            raise NotFoundError(f"no monitored stream {stream_id!r}")
        return session

    def streams(self) -> list[dict[str, Any]]:
        """Every stream with its state and metrics."""
        with self._lock:
            sessions = list(self._sessions.values())
        return [self.describe(s) for s in sessions]

    def describe(self, s: StreamSession) -> dict[str, Any]:
        """One stream's state and metrics, JSON-ready."""
        return {
            "stream_id": s.stream_id,
            "source": s.source.describe(),
            "state": s.state,
            "running": not s.done,
            "ended_by": s.ended_by,
            "error": s.error,
            "last_error": s.last_error,
            "sample_fps": s.sample_fps,
            "context": s.context.to_dict(),
            "actions": list(s.actions_fired),
            "metrics": {**s.metrics_dict(), "dropped": self.pool.dropped(s.stream_id)},
        }

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every stream has ended and its samples are processed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._active:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        while not self.pool.idle():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop every stream and the workers."""
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            s.stop()
        for s in sessions:
            s.thread.join(timeout=30)
        self.pool.close()

    def _finished(self, session: StreamSession) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def _act(self, session: StreamSession, request: ActionRequest) -> None:
        if request.action == "end_stream":
            session.stop("end_stream")
        entry: dict[str, Any] = {
            "action": request.action,
            "verdict": request.verdict,
            "sample_times_s": [round(t, 3) for t in request.sample_times_s],
            "detected_at": request.detected_at.isoformat(),
        }
        session.actions_fired.append(entry)
        if request.action == "warn" and self.silenced is not None:
            try:
                silent = self.silenced(session.context)
            except Exception:  # unknown: err on the side of silence
                log.exception("non-disclosure check failed; warning suppressed")
                silent = True
            if silent:
                entry["suppressed"] = "nondisclosure"
                self.emit(
                    {
                        "event": "action_suppressed",
                        "stream_id": session.stream_id,
                        "reason": "nondisclosure",
                        **request.to_dict(),
                    }
                )
                return
        self.emit({"event": "action", "stream_id": session.stream_id, **request.to_dict()})
        callback = self.callbacks.get(request.action)
        if callback is not None:
            try:
                result = callback(request)
            except Exception:  # the platform's callback failing must not stop monitoring
                log.exception("live action %s failed", request.action)
                entry["result"] = {"error": "the action's callback failed; see the log"}
                return
            # A callback may say what it did (a case's content id, a webhook job).
            to_dict = getattr(result, "to_dict", None)
            if callable(to_dict):
                entry["result"] = to_dict()
            elif isinstance(result, Mapping):
                entry["result"] = dict(result)
