"""Alembic environment: uses the engine handed over by safestream.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from safestream.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only via the alembic CLI
    raise RuntimeError("run migrations through safestream (Store.open), not the alembic CLI")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
