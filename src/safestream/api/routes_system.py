"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from safestream.api.deps import PUBLIC, ServiceState, roles, state
from safestream.auth import Role
from safestream.store.jobs import JobRepository

router = APIRouter(tags=["system"])
State = Annotated[ServiceState, Depends(state)]


@router.get("/v1/health", summary="Liveness: the process answers", **PUBLIC)
def health() -> dict[str, str]:
    """Always ``ok`` while the process runs (no key needed)."""
    return {"status": "ok"}


@router.get("/v1/ready", summary="Readiness: database reachable, index loaded", **PUBLIC)
def ready(st: State, response: Response) -> dict[str, Any]:
    """503 until the database answers and the index is loaded (no key needed)."""
    try:
        with st.store.session() as session:
            session.execute(text("SELECT 1"))
        db_ok = True
    except Exception:  # any database failure means "not ready", never a 500
        db_ok = False
    if not db_ok:
        response.status_code = 503
    return {
        "status": "ready" if db_ok else "unavailable",
        "database": db_ok,
        "index_change_seq": st.engine.matcher.last_seq,
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    **roles(Role.AUDITOR),
)
def metrics(st: State) -> Response:
    """Requests, latency histograms, matches by bank, index size, queue depth."""
    m = st.metrics
    matcher = st.engine.matcher
    m.index_size.labels("pdq").set(len(matcher.pdq))
    for signal_type, index in matcher.exact.items():
        m.index_size.labels(signal_type).set(len(index))
    m.change_seq.set(matcher.last_seq)
    m.queue_depth.set(JobRepository(st.store).queued_count())
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
