"""Database connection: SQLite in the data directory by default, PostgreSQL by URL."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from safestream.errors import ConfigError, InputError

log = logging.getLogger(__name__)

ENV_DATA_DIR = "SAFESTREAM_DATA_DIR"
ENV_DATABASE_URL = "SAFESTREAM_DATABASE_URL"


def default_data_dir() -> Path:
    """The data directory: ``$SAFESTREAM_DATA_DIR`` or the user's data dir."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("safestream", appauthor=False))


def resolve_database_url(url: str | None = None, data_dir: Path | None = None) -> str:
    """Pick the database URL: explicit, then ``$SAFESTREAM_DATABASE_URL``, then SQLite."""
    if url:
        return _normalise_url(url)
    env = os.environ.get(ENV_DATABASE_URL)
    if env:
        return _normalise_url(env)
    directory = data_dir or default_data_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the data directory {directory}: {exc.strerror}; "
            f"set {ENV_DATA_DIR} to a writable directory"
        ) from exc
    return f"sqlite:///{directory / 'safestream.db'}"


def _normalise_url(url: str) -> str:
    # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets scans read while an import writes; busy_timeout waits for locks
    # instead of failing at once when two processes write.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _has_nul(params: Any) -> bool:
    if isinstance(params, str):
        return "\x00" in params
    if isinstance(params, dict):
        return any(_has_nul(v) for v in params.values())
    if isinstance(params, (list, tuple)):
        return any(_has_nul(v) for v in params)
    return False


def _refuse_nul(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _many: bool
) -> None:
    # PostgreSQL cannot store NUL in text ("PostgreSQL text fields cannot contain
    # NUL (0x00) bytes", a DataError, so a 500); refuse it as bad input on every
    # backend, so SQLite and PostgreSQL accept the same data.
    if _has_nul(parameters):
        raise InputError("text must not contain NUL (0x00) characters; remove them and retry")


def make_engine(url: str) -> Engine:
    """Create an engine with the settings we rely on (SQLite pragmas, pool checks)."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 10})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"invalid database URL {_redact(url)}: {exc}") from exc
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def snapshot_xids(conn: Connection) -> tuple[int, int] | None:
    """The ``(xmin, xmax)`` of the current statement's snapshot on PostgreSQL; None elsewhere.

    xmin is the oldest transaction id still running: every lower one has ended,
    committed or rolled back. xmax is one past the newest transaction that has
    *ended*, so a running transaction can hold an id at or above it: xmax is no
    bound on the ids in flight (that is :func:`fresh_xid`). The values are
    64-bit (xid8), which never wrap around (PostgreSQL >= 13).
    """
    if conn.dialect.name != "postgresql":
        return None
    row = conn.execute(
        text(
            "SELECT pg_snapshot_xmin(s)::text, pg_snapshot_xmax(s)::text"
            " FROM pg_current_snapshot() AS s"
        )
    ).one()
    return int(row[0]), int(row[1])


def fresh_xid(engine: Engine) -> int | None:
    """A transaction id above every one assigned before the call (PostgreSQL; None elsewhere).

    It is taken by a short transaction of its own (``pg_current_xact_id()``,
    committed at once): ids are handed out in increasing order, so every
    transaction that already had one has a lower id, and once a snapshot's
    xmin reaches this value all of them have ended. The caller's own
    transaction would not do: it may have taken its id before the moment that
    matters. Costs one transaction id, so call it only when there is a use.
    """
    if engine.dialect.name != "postgresql":
        return None
    with engine.begin() as conn:
        return int(conn.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())


class Store:
    """Owns the engine and hands out sessions; migrates the schema on open."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(
        cls, url: str | None = None, *, data_dir: Path | None = None, migrate: bool = True
    ) -> Store:
        """Open (and by default migrate to the latest schema) the configured database."""
        resolved = resolve_database_url(url, data_dir)
        store = cls(make_engine(resolved))
        if migrate:
            try:
                store.upgrade()
            except OperationalError as exc:
                raise ConfigError(
                    f"cannot open the database {_redact(resolved)}: {exc.orig}"
                ) from exc
        return store

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def upgrade(self) -> None:
        """Apply Alembic migrations up to head."""
        from safestream.store.migrate import upgrade_to_head

        upgrade_to_head(self.engine)

    def instance_id(self) -> str:
        """The random id of this database, fixed when its schema was created."""
        from sqlalchemy import select

        from safestream.store.models import StoreMetaRow

        with self.session() as session:
            value = session.scalar(
                select(StoreMetaRow.value).where(StoreMetaRow.key == "instance_id")
            )
        if value is None:
            raise ConfigError("the database has no instance id: is its schema up to date?")
        return value

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()
