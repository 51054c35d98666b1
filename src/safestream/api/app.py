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
    routes_banks,
    routes_content,
    routes_jobs,
    routes_system,
)
from safestream.api.deps import ServiceState
from safestream.api.metrics import Metrics
from safestream.api.settings import ServiceSettings
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
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, DecompressionBombError):
        return 413
    if isinstance(exc, ImageError):
        return 422
    if isinstance(exc, InputError):
        return 400
    return 400  # ConfigError reaching a request is still the caller's option


class _BodyTooLarge(Exception):
    pass


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

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

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


def build_state(
    store: Store, settings: ServiceSettings, policy: Policy, snapshot_dir: Path | None
) -> ServiceState:
    """Open everything a process serves requests with."""
    repo = BankRepository(store)
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
        keys=KeyRepository(store),
        checks=CheckRepository(store),
        metrics=Metrics(),
        policy=policy,
        actions=actions,
    )


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
    )
    app.state.safestream = st
    for router in (
        routes_content.router,
        routes_banks.router,
        routes_admin.router,
        routes_jobs.router,
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

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        st.metrics.requests.labels(path, request.method, str(response.status_code)).inc()
        st.metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes)
    return app


async def _refresh_loop(st: ServiceState) -> None:
    """Follow the bank change log so every process matches new entries within a second."""
    while True:
        await asyncio.sleep(st.settings.refresh_interval_s)
        try:
            await run_in_threadpool(st.engine.refresh)
        except Exception:  # a database hiccup must not stop future refreshes
            log.warning("index refresh failed; will retry", exc_info=True)
