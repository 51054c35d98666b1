"""The FastAPI application: wiring, error mapping, limits, metrics, index refresh."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safestream.actions.base import ActionEnv
from safestream.actions.runner import ActionRunner
from safestream.actions.webhook import WebhookConfig
from safestream.api import (
    routes_admin,
    routes_audit,
    routes_banks,
    routes_cases,
    routes_content,
    routes_device,
    routes_evidence,
    routes_jobs,
    routes_live,
    routes_requests,
    routes_system,
)
from safestream.api.deps import ServiceState
from safestream.api.keycache import KeyCache
from safestream.api.metrics import Metrics
from safestream.api.schemas import Problem, ValidationProblem
from safestream.api.settings import ServiceSettings
from safestream.classify.base import Classifier
from safestream.engine.check import Engine, EngineOptions
from safestream.engine.policy import DEFAULT_POLICY, Policy
from safestream.errors import (
    ConflictError,
    DecompressionBombError,
    ImageError,
    InputError,
    NotFoundError,
    SafestreamError,
    error_kind,
)
from safestream.evidence.errors import EvidenceIntegrityError, EvidenceStorageError
from safestream.signals.video import VideoError, VideoTooLargeError
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from safestream.store.reviews import ReviewRepository
from safestream.store.service import CheckRepository, KeyRepository

log = logging.getLogger(__name__)


def status_for(exc: SafestreamError) -> int:
    """The HTTP status of one of our errors."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError | EvidenceIntegrityError):
        # Integrity: stored evidence fails its checks (tampered, missing, wrong key); the
        # record's state conflicts with serving it. Audited; see EvidenceStore.get.
        return 409
    if isinstance(exc, EvidenceStorageError):
        return 503  # the bucket or disk is unreachable: retry later
    if isinstance(exc, DecompressionBombError | VideoTooLargeError):
        return 413
    if isinstance(exc, ImageError | VideoError):
        return 422
    if isinstance(exc, InputError):
        return 400
    return 400  # ConfigError reaching a request is still the caller's option


class BodyLimitMiddleware:
    """Refuse request bodies over the limit with 413, before they are buffered."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._refuse(send)
                    return
        seen = 0
        started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Answer 413 now and tell the app the client went away: an
                    # exception raised here would be turned into a 400 by
                    # FastAPI's body parsing before it reached this middleware.
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the response; drop whatever the app answers
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)

    async def _refuse(self, send: Send) -> None:
        body = (
            b'{"detail":"request body is larger than the limit of '
            + str(self.limit).encode()
            + b' bytes","kind":"too_large"}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Request counts and latency by route template (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


def build_state(
    store: Store, settings: ServiceSettings, policy: Policy, snapshot_dir: Path | None
) -> ServiceState:
    """Open everything a process serves requests with."""
    repo = BankRepository(store)
    keys = KeyRepository(store)
    engine = Engine(
        repo,
        EngineOptions(mode=settings.hash_mode, max_pixels=settings.max_pixels),
        snapshot_dir=snapshot_dir,
    )
    # Webhook URL and secret come from server configuration only (never from a
    # caller); a bad value, or a policy using "webhook" without one, stops start-up.
    actions = ActionRunner(
        ActionEnv(
            reviews=ReviewRepository(store),
            jobs=JobRepository(store),
            webhook=WebhookConfig.from_env(),
        )
    )
    actions.check_config(policy.action_names())
    return ServiceState(
        store=store,
        settings=settings,
        engine=engine,
        banks=repo,
        keys=keys,
        checks=CheckRepository(store),
        metrics=Metrics(),
        policy=policy,
        actions=actions,
        classifiers=load_classifiers(settings.classifiers),
        key_cache=KeyCache(keys),
    )


def load_classifiers(specs: tuple[str, ...]) -> list[Classifier]:
    """Load each configured classifier: a bundled name or ``card:PATH``.

    A missing extra, model file or bad card raises a ModelError (a ConfigError)
    so that the service refuses to start rather than run without them.
    """
    from safestream.classify import load_classifier

    loaded = []
    for spec in specs:
        if spec.startswith("card:"):
            loaded.append(load_classifier(card=Path(spec.removeprefix("card:"))))
        else:
            loaded.append(load_classifier(spec))
    return loaded


#: Error responses every operation may give, declared in the OpenAPI spec.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Bad input: the detail says what and why"},
    401: {"model": Problem, "description": "Missing, invalid or revoked API key"},
    403: {"model": Problem, "description": "The key's role may not do this"},
    404: {"model": Problem, "description": "No such object"},
    409: {"model": Problem, "description": "Conflicts with the current state"},
    413: {"model": Problem, "description": "Body over the upload limit, or a decompression bomb"},
    422: {
        "model": Problem | ValidationProblem,
        "description": "Malformed request (FastAPI's validation errors) or an unreadable image",
    },
    429: {"model": Problem, "description": "Rate limited"},
    500: {"model": Problem, "description": "Internal error (logged); never for bad input"},
}


def create_app(
    store: Store | None = None,
    *,
    settings: ServiceSettings | None = None,
    policy: Policy | None = None,
    snapshot_dir: Path | None = None,
) -> FastAPI:
    """The safestream service over ``store`` (default: the configured database)."""
    settings = settings or ServiceSettings.from_env()
    st = build_state(store or Store.open(), settings, policy or DEFAULT_POLICY, snapshot_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_refresh_loop(st))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await run_in_threadpool(routes_live.shutdown, app)  # stop monitored streams

    app = FastAPI(
        title="safestream",
        version="0.1.0",
        description=(
            "Detect known child sexual abuse material by hash, and act on it. "
            "Every route except /v1/health and /v1/ready needs an API key "
            "(Authorization: Bearer <key>); `x-roles` on each operation lists the roles "
            "allowed."
        ),
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.safestream = st
    routes_live.install(app, st)  # live settings checked at start-up; monitor made lazily
    for router in (
        routes_content.router,
        routes_banks.router,
        routes_admin.router,
        routes_jobs.router,
        routes_cases.router,
        routes_requests.router,
        routes_evidence.router,
        routes_audit.router,
        routes_device.router,
        routes_live.router,
        routes_system.router,
    ):
        app.include_router(router)

    @app.exception_handler(SafestreamError)
    async def _our_errors(_: Request, exc: SafestreamError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "kind": error_kind(exc)}, status_code=status_for(exc)
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while serving a request")
        return JSONResponse(
            {"detail": "internal error; it has been logged", "kind": "internal"}, status_code=500
        )

    app.add_middleware(MetricsMiddleware, metrics=st.metrics)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes)
    return app


async def _refresh_loop(st: ServiceState) -> None:
    """Follow bank changes and key revocations, so every process sees them within a second."""
    while True:
        await asyncio.sleep(st.settings.refresh_interval_s)
        try:
            await run_in_threadpool(st.engine.refresh)
            if st.key_cache is not None:
                await run_in_threadpool(st.key_cache.refresh)
        except Exception:  # a database hiccup must not stop future refreshes
            log.warning("index refresh failed; will retry", exc_info=True)
