"""Rollup deltas of one ingest batch and their write, inside the ingest transaction.

The risk engine adds every change of an order's counted value (``ledger.apply``'s delta) to its pair's
``PairDelta`` while it applies the batch (pre-aggregated in Python), and writes the deltas with the balances, in
the same transaction and under the same pair locks (``RiskEngine._write_pairs``). A batch has one receipt time, so
each touched pair moves one hourly and one monthly row: one upsert per table and batch, every column added in SQL
(``INSERT … ON CONFLICT DO UPDATE SET x = x + excluded.x``), no read first.

The statements are plain SQL on the driver (this is the ingest's hot path: no per-value SQLAlchemy processing).
On PostgreSQL the batch's rows travel as one typed array per column (``unnest``) and the decimals are ``NUMERIC``.
On SQLite, which has no exact decimal type, the decimals are decimal text and are added by ``xcwl_dec_add``, a
function registered on each connection that adds them as ``Decimal`` in the risk context (60 digits), so both
backends keep exactly the digits Python computes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk.ledger import RISK_CONTEXT, PairDelta, dec_str

from . import tables as t
from .buckets import hour_of, month_of

_COLUMNS = ("exports_ab", "exports_ba", "amount_ab", "amount_ba", "orders_ab", "orders_ba", "events")
"""What the ingest adds, in the order of the statements' parameters (after wl_a, wl_b)."""
_DECIMALS = frozenset(t.DECIMALS)
SQLITE_DEC_ADD = "xcwl_dec_add"
"""The SQLite function that adds two decimal texts exactly."""


def dec_add(x: str | None, y: str | None) -> str:
    """``x + y`` of two decimal texts (None = 0), in the risk context, as plain decimal text."""
    return dec_str(RISK_CONTEXT.add(Decimal(x or 0), Decimal(y or 0)))


async def ensure_dec_add(conn: AsyncConnection) -> None:
    """Register ``xcwl_dec_add`` on ``conn``'s SQLite connection (once per connection; it lives as long)."""
    raw = await conn.get_raw_connection()
    if raw.info.get(SQLITE_DEC_ADD):
        return
    driver: Any = raw.driver_connection
    await driver.create_function(SQLITE_DEC_ADD, 2, dec_add, deterministic=True)
    raw.info[SQLITE_DEC_ADD] = True


def _added(column: str, postgres: bool) -> str:
    if column in _DECIMALS and not postgres:
        return f"{column} = {SQLITE_DEC_ADD}(r.{column}, excluded.{column})"
    return f"{column} = r.{column} + excluded.{column}"


@lru_cache(maxsize=8)
def upsert_sql(table: sa.Table, bucket_column: str, columns: tuple[str, ...], postgres: bool) -> str:
    """``INSERT … ON CONFLICT (pair, bucket) DO UPDATE`` adding ``columns``; the other counters start at 0.

    Parameters: on PostgreSQL the bucket then one array per key column and per ``columns``; on SQLite one row
    (wl_a, wl_b, bucket, ``columns``…) per execution."""
    zeros = [c for c in t.COUNTERS if c not in columns]
    decimal_zeros = [c for c in t.DECIMALS if c not in columns]
    names = ["wl_a", "wl_b", bucket_column, *columns, *zeros, *decimal_zeros]
    fill = [*(["0"] * len(zeros)), *(["0" if postgres else "'0'"] * len(decimal_zeros))]
    if postgres:
        dialect = postgresql.dialect()
        arrays = ", ".join(f"%b::{table.c[c].type.compile(dialect=dialect)}[]" for c in ("wl_a", "wl_b", *columns))
        source = (f"SELECT u.wl_a, u.wl_b, %b::timestamptz, {', '.join(f'u.{c}' for c in columns)}"
                  f"{''.join(', ' + f for f in fill)} FROM unnest({arrays}) AS u(wl_a, wl_b, {', '.join(columns)})")
    else:
        source = f"VALUES ({', '.join(['?'] * (3 + len(columns)) + fill)})"
    updates = ", ".join(_added(c, postgres) for c in columns)
    return (f"INSERT INTO {table.name} AS r ({', '.join(names)}) {source} "
            f"ON CONFLICT (wl_a, wl_b, {bucket_column}) DO UPDATE SET {updates}")


async def add_rows(conn: AsyncConnection, table: sa.Table, bucket_column: str, bucket: dt.datetime,
                   columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> None:
    """Add ``rows`` — ``(wl_a, wl_b, value per column…)``, decimals as ``Decimal`` — to the (pair, ``bucket``)
    rows of ``table``, creating the missing ones: one statement (PostgreSQL) or one executemany (SQLite)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        sql = upsert_sql(table, bucket_column, columns, True)
        arrays = [list(values) for values in zip(*rows, strict=True)]
        await conn.exec_driver_sql(sql, (bucket, *arrays))
        return
    await ensure_dec_add(conn)
    sql = upsert_sql(table, bucket_column, columns, False)
    stamp = _sqlite_time(bucket)
    decimal_at = [i for i, c in enumerate(columns, start=2) if c in _DECIMALS]
    params = []
    for r in rows:
        values = list(r)
        for i in decimal_at:
            values[i] = dec_str(values[i])
        params.append((values[0], values[1], stamp, *values[2:]))
    await conn.exec_driver_sql(sql, params)


def _sqlite_time(at: dt.datetime) -> str:
    # The text SQLAlchemy's SQLite DATETIME stores for a UtcDateTime (naive UTC), so the conflict key matches.
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class RollupWriter:
    """Writes a batch's pair deltas into the hourly and monthly rollups."""

    async def write(self, conn: AsyncConnection, deltas: Iterable[tuple[str, str, PairDelta]],
                    at: dt.datetime) -> None:
        """Add ``deltas`` (per pair) to the buckets of ``at``; the caller holds the pairs' locks."""
        rows = sorted(((a, b, d.exports_ab, d.exports_ba, d.amount_ab, d.amount_ba, d.orders_ab, d.orders_ba,
                        d.events) for a, b, d in deltas if not d.empty), key=lambda r: (r[0], r[1]))
        if not rows:
            return
        for table, column, bucket in ((t.hours, "hour", hour_of(at)), (t.months, "month", month_of(at))):
            await add_rows(conn, table, column, bucket, _COLUMNS, rows)
