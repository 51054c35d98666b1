"""Database fixtures: every store test runs on SQLite and, when
``SAFESTREAM_TEST_DATABASE_URL`` is set, on PostgreSQL in a private schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from safestream.store.banks import BankRepository
from safestream.store.db import Store, _normalise_url

PG_URL = os.environ.get("SAFESTREAM_TEST_DATABASE_URL")


def _pg_store() -> Iterator[Store]:
    assert PG_URL
    base = _normalise_url(PG_URL)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    store = Store.open(f"{base}{sep}options=-csearch_path%3D{schema}")
    try:
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, migrated store on each backend."""
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("PostgreSQL tests need SAFESTREAM_TEST_DATABASE_URL (CI sets it)")
        yield from _pg_store()
    else:
        s = Store.open(data_dir=tmp_path / "data")
        yield s
        s.dispose()


@pytest.fixture
def repo(store: Store) -> BankRepository:
    """A bank repository over the fresh store."""
    return BankRepository(store)
