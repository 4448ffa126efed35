"""Dialect-specific statements the risk store needs on both SQLite and PostgreSQL (``ON CONFLICT`` forms)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def insert_ignore(conn: AsyncConnection, table: sa.Table, index_elements: Sequence[str]) -> Any:
    """``INSERT … ON CONFLICT (index_elements) DO NOTHING`` for ``conn``'s dialect."""
    return _insert(conn, table).on_conflict_do_nothing(index_elements=list(index_elements))


async def add_counts(
    conn: AsyncConnection, table: sa.Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]
) -> None:
    """Upsert ``count = count + excluded.count`` for each row (one statement, executemany)."""
    if not rows:
        return
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={"count": table.c["count"] + stmt.excluded["count"]}
    )
    await conn.execute(stmt, list(rows))


class WriteGate:
    """Serializes this process's write transactions on SQLite (no-op on PostgreSQL).

    SQLite admits one writer; a second ``BEGIN IMMEDIATE`` waits in SQLite's busy handler, which sleeps in steps
    of up to 100 ms. Queuing writers on an asyncio lock instead hands the database over as soon as the previous
    transaction commits, which keeps ingest and signal latency low under concurrency.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on the engine (committed on exit, rolled back on error)."""
        if self._lock is None:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._lock, self._engine.begin() as conn:
            yield conn


def _sqlite_value(value: Any) -> Any:
    # The same text SQLAlchemy's SQLite DATETIME stores (naive UTC, see tables.UtcDateTime), so reads agree.
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


async def fast_insert(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]], *, conflict: Sequence[str] = ()
) -> int:
    """Insert ``rows`` with the driver's executemany (hot path: no per-value SQLAlchemy type processing).

    With ``conflict``, rows whose key exists are skipped (``ON CONFLICT … DO NOTHING``). Returns the number of
    rows inserted. Values must already be in storage form (decimal strings, aware UTC datetimes, bytes).
    """
    if not rows:
        return 0
    columns = list(rows[0].keys())
    sqlite_ = conn.dialect.name == "sqlite"
    placeholder = "?" if sqlite_ else "%s"
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([placeholder] * len(columns))})"
           + (f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING" if conflict else ""))
    if sqlite_:
        params = [tuple(_sqlite_value(r[c]) for c in columns) for r in rows]
    else:
        params = [tuple(r[c] for c in columns) for r in rows]
    result = await conn.exec_driver_sql(sql, params)
    return int(result.rowcount)
