"""Storage plumbing shared by the CP and WL node stores: URLs, async engines, Alembic at start-up.

URLs: ``sqlite:///path.db`` (embedded default) or ``postgresql://user@host:port/db`` (production). The async
drivers are aiosqlite and psycopg 3. SQLite runs in WAL mode with ``synchronous=FULL`` (durable commits) and
``BEGIN IMMEDIATE`` so concurrent writers queue on the lock instead of failing on upgrade. SQLite files are
created owner-only (0600), and so are their ``-wal``/``-shm`` files (``secure_sqlite_file``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from . import tracing
from .safe_files import PRIVATE_MODE, restrict_to_owner

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_MIGRATION_LOCK_KEY = 0x78636C77  # "xclw": serializes migrations of replicas starting together


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


_DRIVERS = {
    # backend: (async driver, sync driver); psycopg 3 serves both for PostgreSQL
    "sqlite": ("sqlite+aiosqlite", "sqlite"),
    "postgresql": ("postgresql+psycopg", "postgresql+psycopg"),
}


def _with_driver(url: str, *, asynchronous: bool) -> str:
    parsed = make_url(url)
    drivers = _DRIVERS.get(parsed.get_backend_name())
    if drivers is None:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://")
    return parsed.set(drivername=drivers[0 if asynchronous else 1]).render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The async-driver form of a user-facing URL."""
    return _with_driver(url, asynchronous=True)


def sync_url(url: str) -> str:
    """The sync-driver form of a user-facing URL (Alembic)."""
    return _with_driver(url, asynchronous=False)


def libpq_dsn(url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://`` → ``postgresql://``), for a
    psycopg connection of its own such as a LISTEN connection."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def configure_sqlite(engine: sa.Engine, *, writer: bool = True) -> None:
    """Give a sync SQLite engine this module's connection set-up: WAL, ``synchronous=FULL``, foreign keys, busy
    timeout and, for a ``writer``, ``BEGIN IMMEDIATE`` (a read-only engine does not queue behind writers)."""
    event.listen(engine, "connect", _sqlite_pragmas)
    if writer:
        event.listen(engine, "begin", _sqlite_begin)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control away from the driver so that "BEGIN IMMEDIATE" below is the only BEGIN.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def secure_sqlite_file(url: str) -> None:
    """Create a SQLite database file 0600 before SQLite opens it, and tighten an existing one (and its side files).

    SQLite creates a new database with the umask's mode (often 0644) and gives its ``-wal``/``-shm`` files the
    database file's mode, so creating the file here, owner-only, keeps every file of the store private.
    """
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    db_file = Path(path)
    db_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
    except FileExistsError:
        restrict_to_owner(db_file)
    for suffix in SQLITE_SIDE_FILES:
        restrict_to_owner(db_file.with_name(db_file.name + suffix))


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for ``url`` with the settings above; with tracing on, its transactions are child spans."""
    if is_sqlite(url):
        secure_sqlite_file(url)
        engine = create_async_engine(async_url(url), pool_size=pool_size, max_overflow=0)
        configure_sqlite(engine.sync_engine)
    else:
        engine = create_async_engine(async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    tracing.trace_transactions(engine.sync_engine)
    return engine


def create_sync_engine(url: str) -> sa.Engine:
    if is_sqlite(url):
        secure_sqlite_file(url)
    return sa.create_engine(sync_url(url))


def upgrade(url: str, script_location: Path, *, version_table: str) -> None:
    """Apply every Alembic migration of ``script_location`` to ``url`` (idempotent; safe for replicas)."""
    # Imported here: a process that migrates in a child (a WL node) never loads Alembic (~12 MB resident).
    from alembic import command
    from alembic.config import Config

    engine = create_sync_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": PG_MIGRATION_LOCK_KEY})
                conn.commit()
            try:
                cfg = Config()
                cfg.set_main_option("script_location", str(script_location))
                cfg.attributes["connection"] = conn
                cfg.attributes["version_table"] = version_table
                command.upgrade(cfg, "heads")  # one branch per feature
                conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": PG_MIGRATION_LOCK_KEY})
                    conn.commit()
    finally:
        engine.dispose()
