"""Live stream routes: start monitoring a stream, list streams, read one, stop one.

The :class:`~safestream.live.Monitor` lives in the app process: it is created at the
first ``POST /v1/streams`` and closed when the app shuts down. Which sources a caller
may name is the server's decision (:mod:`safestream.live.allow`): nothing by default.

Every action a stream's verdict fires is also sent through the service's action runner
as a ``webhook`` delivery (when ``SAFESTREAM_WEBHOOK_URL`` is set), so the platform
learns to end, obscure or warn: for live deliveries ``context.surface`` is ``live``,
``verdict`` is the live action (``end_stream``, ``obscure``, ``warn``, ``open_case``)
and ``rule`` is ``live:<stream id>``. ``open_case`` also writes a check record with
``surface="live"`` (see :mod:`safestream.live.cases`), which becomes a case.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import threading
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from safestream.actions.base import ActionEvent
from safestream.api.deps import ServiceState, roles
from safestream.api.schemas import Strict
from safestream.auth import Role
from safestream.errors import ConfigError, ConflictError, InputError, NotFoundError
from safestream.live.allow import SourceNotAllowedError, SourcePolicy
from safestream.live.cases import LiveCaseWriter, evidence_from_env
from safestream.live.ingest import StreamContext
from safestream.live.monitor import ACTIONS, ActionRequest, Monitor, SampleAnalyzer
from safestream.requests.nondisclosure import identifiers_of, nondisclosure_applies

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["live"])

LiveAction = Literal["end_stream", "obscure", "warn", "open_case"]
STREAM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
#: How long ``DELETE`` waits for the stream's reader to finish before answering.
STOP_WAIT_S = 5.0


class StreamIn(Strict):
    """A stream to monitor and who is streaming."""

    source: str = Field(
        min_length=1,
        max_length=2048,
        description=(
            "URL (rtmp, rtmps, rtsp, rtsps, srt, http, https) allowed by "
            "SAFESTREAM_LIVE_ALLOWED_SOURCES, or a path under SAFESTREAM_LIVE_FILE_ROOT "
            "(played at real time)"
        ),
    )
    stream_id: str | None = Field(default=None, pattern=STREAM_ID_PATTERN)
    account_id: str | None = Field(default=None, max_length=200)
    username: str | None = Field(default=None, max_length=200)
    profile_url: str | None = Field(default=None, max_length=2048)
    ip_address: str | None = Field(default=None, max_length=64)
    source_port: int | None = Field(default=None, ge=0, le=65535)
    sample_fps: float = Field(default=1.0, gt=0, le=30)
    actions: list[LiveAction] | None = Field(
        default=None,
        max_length=len(ACTIONS),
        description="Actions this stream's verdicts may take (default: all the policy's)",
    )


class StreamMetricsOut(BaseModel):
    """A stream's counters; latency is frame arrival to verdict."""

    samples: int
    results: int
    samples_per_s: float
    matches: int
    dropped: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    frames_decoded: int
    #: Packets not decoded: the rest of a GOP after its last due sample, and
    #: non-reference pictures before a due time (also counted apart below).
    packets_skipped: int
    packets_unreferenced: int = 0
    #: Video streams of the source being sampled (each with its own decoder).
    video_streams: int = 0
    #: Referenced B-pictures skipped because no decoded picture uses them (I/P chain).
    b_references_skipped: int = 0
    #: Why the I/P chain was turned off for this stream, if it was.
    chain_fallback_reason: str | None = None
    #: Times the stream's timestamps went back, repeated or jumped (its time goes on).
    timestamp_discontinuities: int = 0
    #: Samples due by the packet count, not the time (timestamps slower than frames).
    samples_by_frame_count: int = 0


class StreamOut(BaseModel):
    """A monitored stream: state, context, actions fired and metrics."""

    stream_id: str
    source: str
    state: Literal["running", "stopping", "ended", "failed"]
    running: bool
    ended_by: str | None
    error: str | None
    last_error: str | None
    sample_fps: float
    context: dict[str, Any]
    actions: list[dict[str, Any]]
    metrics: StreamMetricsOut


class StreamList(BaseModel):
    """Every stream this process monitors or monitored recently."""

    streams: list[StreamOut]


class LiveService:
    """The app's monitor, its source policy and what its actions do."""

    def __init__(self, st: ServiceState) -> None:
        self.st = st
        settings = st.settings
        self.sources = SourcePolicy.parse(settings.live_allowed_sources, settings.live_file_root)
        try:
            evidence = evidence_from_env(st.store)
        except ConfigError:
            log.warning("evidence store misconfigured: live frames will not be preserved")
            evidence = None
        self.writer = LiveCaseWriter(st.checks, evidence, actor="service:live")
        self._lock = threading.Lock()
        self._monitor: Monitor | None = None
        self._keys: dict[str, int | None] = {}

    @property
    def monitor(self) -> Monitor | None:
        """The monitor, if one was started."""
        return self._monitor

    def _ensure(self) -> Monitor:
        with self._lock:
            if self._monitor is None:
                scorer = None
                scorer_size = None
                if self.st.classifiers:
                    from safestream.classify import combine_scores, shared_stretch_size

                    classifiers = list(self.st.classifiers)
                    scorer_size = shared_stretch_size(classifiers)

                    def scorer(rgb: Any) -> Any:
                        return combine_scores(c.classify(rgb) for c in classifiers)

                self._monitor = Monitor(
                    SampleAnalyzer(self.st.engine, scorer, scorer_size=scorer_size),
                    workers=self.st.settings.live_workers,
                    video_streams=self.st.settings.live_video_streams,
                    max_video_streams=self.st.settings.live_max_video_streams,
                    actions={name: self._on_action for name in ACTIONS},
                    silenced=lambda ctx: nondisclosure_applies(self.st.store, identifiers_of(ctx)),
                )
            return self._monitor

    def start(self, body: StreamIn, api_key_id: int | None) -> dict[str, Any]:
        """Start monitoring (the source is checked against the policy first)."""
        ip = body.ip_address
        if ip is not None:
            try:
                ip = str(ipaddress.ip_address(ip.strip()))
            except ValueError:
                raise InputError(f"ip_address {ip[:64]!r} is not an IPv4 or IPv6 address") from None
        source = self.sources.source(body.source)
        if self.st.settings.live_hwaccel is not None:
            source = dataclasses.replace(source, hwaccel=self.st.settings.live_hwaccel)
        monitor = self._ensure()
        running = sum(1 for s in monitor.streams() if s["running"])
        if running >= self.st.settings.live_max_streams:
            raise ConflictError(
                f"this process already monitors {running} streams, its limit; stop one or "
                "raise SAFESTREAM_LIVE_MAX_STREAMS"
            )
        stream_id = body.stream_id or uuid.uuid4().hex
        context = StreamContext(
            stream_id,
            account_id=body.account_id,
            username=body.username,
            profile_url=body.profile_url,
            ip_address=ip,
            source_port=body.source_port,
        )
        if len(self._keys) > 2 * monitor.keep_ended:  # forget streams no longer listed
            listed = {s["stream_id"] for s in monitor.streams()}
            self._keys = {k: v for k, v in self._keys.items() if k in listed}
        self._keys[stream_id] = api_key_id
        session = monitor.add(
            source,
            context,
            sample_fps=body.sample_fps,
            actions=frozenset(body.actions) if body.actions is not None else None,
        )
        return monitor.describe(session)

    def list(self) -> list[dict[str, Any]]:
        """Every stream."""
        return [] if self._monitor is None else self._monitor.streams()

    def get(self, stream_id: str) -> dict[str, Any]:
        """One stream (NotFoundError when unknown)."""
        if self._monitor is None:
            raise NotFoundError(f"no monitored stream {stream_id!r}")
        return self._monitor.describe(self._monitor.session(stream_id))

    def stop(self, stream_id: str) -> dict[str, Any]:
        """Stop a stream; wait a little for its reader to finish."""
        if self._monitor is None:
            raise NotFoundError(f"no monitored stream {stream_id!r}")
        session = self._monitor.session(stream_id)
        session.stop()
        session.finished.wait(STOP_WAIT_S)
        return self._monitor.describe(session)

    def close(self) -> None:
        """Stop every stream and the workers (app shutdown)."""
        with self._lock:
            monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.close()

    def _on_action(self, request: ActionRequest) -> dict[str, Any]:
        """Write the case (``open_case``) and send the action to the action runner."""
        ctx = request.context
        out: dict[str, Any] = {}
        content_id = None
        if request.action == "open_case":
            written = self.writer.write(request, api_key_id=self._keys.get(ctx.stream_id))
            out["case"] = written.to_dict()
            content_id = written.content_id
        event = ActionEvent(
            content_id=content_id or str(uuid.uuid4()),
            received_at=request.detected_at,
            verdict=request.verdict,
            outcome="match" if request.matches else "no_match",
            rule=f"live:{ctx.stream_id}",
            matches=[m.to_dict() for m in request.matches],
            context={
                "account_id": ctx.account_id,
                "username": ctx.username,
                "profile_url": ctx.profile_url,
                "ip_address": ctx.ip_address,
                "source_port": ctx.source_port,
                "client_timestamp": ctx.started_at.isoformat(),
                "surface": "live",
            },
            flood_window_s=self.st.policy.flood_window_s,
            stream={
                "stream_id": ctx.stream_id,
                "action": request.action,
                "sample_times_s": [round(t, 3) for t in request.sample_times_s],
            },
        )
        out["action_results"] = [r.to_dict() for r in self.st.actions.run(("webhook",), event)]
        for m in request.matches:
            self.st.metrics.matches.labels(m.bank, m.signal_type).inc()
        return out


def install(app: FastAPI, st: ServiceState) -> None:
    """Attach the live service to the app (validates the live settings now)."""
    app.state.safestream_live = LiveService(st)


def shutdown(app: FastAPI) -> None:
    """Close the app's monitor, if one was started."""
    live = getattr(app.state, "safestream_live", None)
    if isinstance(live, LiveService):
        live.close()


def _live(request: Request) -> LiveService:
    live = getattr(request.app.state, "safestream_live", None)
    if live is None:
        live = request.app.state.safestream_live = LiveService(request.app.state.safestream)
    assert isinstance(live, LiveService)
    return live


def _http(exc: InputError) -> HTTPException:
    """The status of a live error: 403 not allowed, 404, 409, else 422 (bad payload)."""
    if isinstance(exc, SourceNotAllowedError):
        return HTTPException(403, str(exc))
    if isinstance(exc, NotFoundError):
        return HTTPException(404, str(exc))
    if isinstance(exc, ConflictError):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))


StreamIdPath = Annotated[str, Path(min_length=1, max_length=100)]


@router.post(
    "/streams",
    response_model=StreamOut,
    status_code=201,
    summary="Start monitoring a live stream",
    **roles(Role.INTEGRATOR),
)
async def start_stream(request: Request, body: StreamIn) -> dict[str, Any]:
    """Open the source (if the server allows it) and sample it; 201 with its state.

    A source that cannot be opened is reported by ``GET /v1/streams/{stream_id}``
    (``error``, or ``last_error`` while a network source is retried).
    """
    live = _live(request)
    api_key = getattr(request.state, "api_key", None)
    try:
        return await run_in_threadpool(live.start, body, api_key.id if api_key else None)
    except InputError as exc:
        raise _http(exc) from None


@router.get(
    "/streams",
    response_model=StreamList,
    summary="List monitored streams with state and metrics",
    **roles(Role.INTEGRATOR),
)
async def list_streams(request: Request) -> dict[str, Any]:
    """Samples/s, frame-arrival-to-verdict latency (p50, p95), drops and matches per stream."""
    return {"streams": _live(request).list()}


@router.get(
    "/streams/{stream_id}",
    response_model=StreamOut,
    summary="One monitored stream",
    **roles(Role.INTEGRATOR),
)
async def get_stream(request: Request, stream_id: StreamIdPath) -> dict[str, Any]:
    """The stream's state, context, actions fired and metrics."""
    try:
        return _live(request).get(stream_id)
    except InputError as exc:
        raise _http(exc) from None


@router.delete(
    "/streams/{stream_id}",
    response_model=StreamOut,
    summary="Stop monitoring a stream",
    **roles(Role.INTEGRATOR),
)
async def stop_stream(request: Request, stream_id: StreamIdPath) -> dict[str, Any]:
    """Stop reading the stream; its record stays listed with ``ended_by = stopped``."""
    live = _live(request)
    try:
        return await run_in_threadpool(live.stop, stream_id)
    except InputError as exc:
        raise _http(exc) from None
