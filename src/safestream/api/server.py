"""The app factory uvicorn runs in each worker process (configured by environment)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.engine.policy import DEFAULT_POLICY, Policy
from safestream.index.pdq_index import warm_up
from safestream.store.db import Store, default_data_dir

ENV_POLICY_FILE = "SAFESTREAM_POLICY_FILE"


def load_policy() -> Policy:
    """The policy named by ``$SAFESTREAM_POLICY_FILE``, else the default."""
    path = os.environ.get(ENV_POLICY_FILE)
    return Policy.load(Path(path)) if path else DEFAULT_POLICY


def app_from_env() -> FastAPI:
    """Build the app from ``SAFESTREAM_*`` settings (uvicorn ``--factory``)."""
    # Compile (or load from numba's cache) the index kernels before the first
    # request, so that no request pays for it.
    warm_up()
    return create_app(
        Store.open(),
        settings=ServiceSettings.from_env(),
        policy=load_policy(),
        snapshot_dir=default_data_dir() / "index-snapshot",
    )
