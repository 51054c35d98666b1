"""API fixtures: an app over a fresh store, and a key for every role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.auth import Role
from safestream.store.db import Store
from safestream.store.service import KeyRepository


@pytest.fixture(autouse=True)
def _upload_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Async imports store uploads in a temporary folder, never the user's data dir."""
    monkeypatch.setenv("SAFESTREAM_UPLOAD_DIR", str(tmp_path_factory.mktemp("uploads")))


@pytest.fixture
def settings() -> ServiceSettings:
    return ServiceSettings(max_upload_bytes=2 * 1024 * 1024, refresh_interval_s=0.05)


@pytest.fixture
def client(store: Store, settings: ServiceSettings) -> Iterator[TestClient]:
    app = create_app(store, settings=settings)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def role_keys(store: Store) -> dict[Role, str]:
    repo = KeyRepository(store)
    return {role: repo.create(role.value, f"test {role.value}")[0] for role in Role}
