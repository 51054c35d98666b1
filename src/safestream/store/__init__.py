"""Persistence: SQLAlchemy models, sessions and Alembic migrations."""

from safestream.store.db import Store, default_data_dir, resolve_database_url

__all__ = ["Store", "default_data_dir", "resolve_database_url"]
