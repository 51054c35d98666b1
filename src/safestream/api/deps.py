"""Request dependencies: the service state, and API-key authentication by role."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from safestream.actions.runner import ActionRunner
from safestream.api.keycache import KeyCache
from safestream.api.metrics import Metrics
from safestream.api.settings import ServiceSettings
from safestream.auth import Role
from safestream.classify.base import Classifier
from safestream.engine.check import Engine
from safestream.engine.policy import Policy
from safestream.store.banks import BankRepository
from safestream.store.db import Store
from safestream.store.service import ApiKey, CheckRepository, KeyRepository


@dataclass
class ServiceState:
    """Everything a request handler needs, built once per process."""

    store: Store
    settings: ServiceSettings
    engine: Engine
    banks: BankRepository
    keys: KeyRepository
    checks: CheckRepository
    metrics: Metrics
    policy: Policy
    #: Runs the decision's actions (block, review items, webhook jobs).
    actions: ActionRunner
    #: Verified keys, cached per process (see keycache.py).
    key_cache: KeyCache | None = None
    #: Classifiers run on every checked image (none by default).
    classifiers: list[Classifier] = field(default_factory=list)


async def state(request: Request) -> ServiceState:
    """The process's service state (async: no thread-pool hop for a dependency)."""
    return _state(request)


def _state(request: Request) -> ServiceState:
    value = request.app.state.safestream
    assert isinstance(value, ServiceState)
    return value


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or X-API-Key: <key>")


def require(*roles: Role) -> Any:
    """A dependency that admits keys of ``roles`` (and ``admin``), else 401/403."""
    allowed = frozenset({Role.ADMIN, *roles})

    async def check(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),  # noqa: B008
        header_key: str | None = Security(_header),
    ) -> ApiKey:
        key = bearer.credentials if bearer is not None else header_key
        if not key:
            raise HTTPException(
                401,
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        st = _state(request)
        # A cached key costs no database call, so no thread-pool hop either.
        api_key = st.key_cache.cached(key) if st.key_cache else None
        if api_key is None:
            verify = st.key_cache.verify if st.key_cache else st.keys.verify
            api_key = await run_in_threadpool(verify, key)
        if api_key is None:
            raise HTTPException(
                401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        if api_key.role not in allowed:
            needed = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(
                403, f"a key with role {api_key.role.value!r} may not do this; needs: {needed}"
            )
        request.state.api_key = api_key
        return api_key

    return Depends(check)


def roles(*allowed: Role) -> dict[str, Any]:
    """Route keyword arguments: the auth dependency and the roles in the OpenAPI spec."""
    names = sorted({Role.ADMIN.value, *(r.value for r in allowed)})
    return {"dependencies": [require(*allowed)], "openapi_extra": {"x-roles": names}}


#: Routes open without a key (load-balancer probes); they reveal nothing.
PUBLIC: dict[str, Any] = {"openapi_extra": {"x-roles": ["public"]}}
