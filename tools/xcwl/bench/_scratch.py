"""A scratch PostgreSQL database for one bench run, dropped afterwards; store checkpoints between measured rounds."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def scratch_postgres(admin_dsn: str, prefix: str = "xcwl_bench") -> AsyncIterator[str]:
    """Create a fresh database on the server of ``admin_dsn``; yields its URL; drops it (connections forced off)."""
    import psycopg  # only the PostgreSQL runs need it

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def checkpoint(admin_dsn: str) -> None:
    """``CHECKPOINT`` on the server of ``admin_dsn`` (a superuser's): a bench calls it before each measured round, so
    the server's periodic write-back of everything the previous rounds dirtied (every few minutes, or each
    ``max_wal_size`` of WAL) does not land in the middle of one variant's round and make its tail alone."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute("CHECKPOINT")


async def checkpoint_sqlite(urls: list[str]) -> None:
    """``PRAGMA wal_checkpoint(TRUNCATE)`` on each SQLite file: every measured round starts with an empty WAL, so the
    automatic checkpoints inside a round (SQLite runs them in the committing transaction, every 1,000 pages) fall
    at the same points for every variant instead of wherever the previous rounds left the log."""
    import asyncio
    import sqlite3

    from xwl_runtime.db import SQLITE_BUSY_TIMEOUT_MS

    def run() -> None:
        for url in urls:
            with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"),
                                                    timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    await asyncio.to_thread(run)


async def vacuum_postgres(urls: list[str]) -> None:
    """``VACUUM (ANALYZE)`` of each PostgreSQL database: after a bulk load, autovacuum would otherwise visit the
    freshly inserted tables at a moment of its choosing (PostgreSQL vacuums after enough inserts too), in the
    middle of whichever variant's round is running then."""
    import psycopg

    for url in urls:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("VACUUM (ANALYZE)")


async def drop_postgres(admin_dsn: str, url: str) -> None:
    """Drop the database of ``url`` (connections forced off): a bench's finished store leaves nothing behind for
    autovacuum to work on while later rounds are measured."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
