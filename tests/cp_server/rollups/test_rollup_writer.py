"""The rollup writer on the real store: one statement per table and batch whatever the number of pairs, sums
exact to the last of many decimal places on both backends (SQLite adds decimal text with ``xcwl_dec_add``,
PostgreSQL adds NUMERIC), negative deltas, and the nodes' funnel counts merged into the same rows."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.risk.ledger import PairDelta
from cp_server.rollups import tables as t
from cp_server.rollups.funnel import add_funnel
from cp_server.rollups.writer import RollupWriter
from tests.cp_server.risk.harness import migrate
from xwl_runtime import db

AT = dt.datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
HOUR = dt.datetime(2026, 3, 31, 23, tzinfo=dt.UTC)
MONTH = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
FINE = Decimal("0.000000000000000000000000000001")  # 30 places: a float would lose it next to 1e6
PAIRS = [(f"wl-{i:02d}", f"wl-{i + 1:02d}") for i in range(0, 10, 2)]


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(migrate, db_url)
    engine = db.create_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def _delta(k: int) -> PairDelta:
    return PairDelta(exports_ab=Decimal(1_000_000) + FINE * k, exports_ba=-FINE, amount_ab=Decimal("0.1"),
                     amount_ba=Decimal("-12.34"), orders_ab=1, orders_ba=-1, events=3)


async def test_each_batch_is_one_statement_per_table_and_sums_are_exact(engine: AsyncEngine) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    writer = RollupWriter()
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        for k in range(1, 4):  # three batches into the same hour and month
            async with engine.begin() as conn:
                before = len(statements)
                await writer.write(conn, [(a, b, _delta(k)) for a, b in PAIRS] + [("wl-x", "wl-y", PairDelta())],
                                   AT)
                batch = [s for s in statements[before:] if s.lstrip().upper().startswith("INSERT")]
                assert len(statements) - before == 2 and len(batch) == 2, statements[before:]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)

    async with engine.begin() as conn:
        await add_funnel(conn, "wl-01", [("wl-00", 7, 2), ("wl-09", 0, 0)], AT)  # wl-01 imports from wl-00: a→b
        await add_funnel(conn, "wl-00", [("wl-01", 3, 1)], AT)  # and the other way
    async with engine.connect() as conn:
        for table, column, bucket in ((t.hours, "hour", HOUR), (t.months, "month", MONTH)):
            rows = {(r.wl_a, r.wl_b): r for r in (await conn.execute(sa.select(table))).all()}
            assert set(rows) == set(PAIRS)  # the empty delta wrote nothing
            for pair, r in rows.items():
                assert r._mapping[column] == bucket
                assert r.exports_ab == Decimal(3_000_000) + FINE * 6
                assert r.exports_ba == -FINE * 3
                assert (r.amount_ab, r.amount_ba) == (Decimal("0.3"), Decimal("-37.02"))
                assert (r.orders_ab, r.orders_ba, r.events) == (3, -3, 9)
                views = (7, 3, 2, 1) if pair == ("wl-00", "wl-01") else (0, 0, 0, 0)
                assert (r.views_ab, r.views_ba, r.checkouts_ab, r.checkouts_ba) == views
