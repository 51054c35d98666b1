"""Admin routes: API keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from safestream.api.deps import ServiceState, roles, state
from safestream.api.schemas import KeyCreated, KeyIn, KeyOut

router = APIRouter(prefix="/v1/keys", tags=["admin"])
State = Annotated[ServiceState, Depends(state)]
ADMIN = roles()


@router.get("", response_model=list[KeyOut], summary="List API keys", **ADMIN)
def list_keys(st: State) -> list[dict[str, Any]]:
    """Every key, newest first (never the secrets)."""
    return [k.to_dict() for k in st.keys.list()]


@router.post("", response_model=KeyCreated, status_code=201, summary="Create an API key", **ADMIN)
def create_key(body: KeyIn, st: State, request: Request) -> dict[str, Any]:
    """A new key; the response is the only time the key is shown (audited)."""
    key, record = st.keys.create(body.role, body.name, actor=_actor(request))
    return {**record.to_dict(), "key": key}


@router.post("/{key_id}/revoke", response_model=KeyOut, summary="Revoke an API key", **ADMIN)
def revoke_key(key_id: int, st: State, request: Request) -> dict[str, Any]:
    """The key stops working at once here, and within a second on every other process."""
    record = st.keys.revoke(key_id, actor=_actor(request))
    if st.key_cache is not None:
        st.key_cache.evict({key_id})
    return record.to_dict()


def _actor(request: Request) -> str:
    api_key = getattr(request.state, "api_key", None)
    return f"api_key:{api_key.id}:{api_key.prefix}" if api_key is not None else "api"
