"""The ingest's driver-level statements (PostgreSQL COPY / unnest / ANY, SQLite executemany) store exactly what
SQLAlchemy reads back, and a key collision surfaces as ``DuplicateKey`` — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.risk import tables as t
from cp_server.risk.sql import DuplicateKey, fast_insert, in_values, select_in
from tests.cp_server.risk.harness import migrate
from xwl_runtime import db

NOW = dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)


def _row(n: int, occur: dt.datetime | None) -> dict[str, object]:
    return {
        "event_id": f"e{n}", "wl_id": "wl-a", "kind": "EXPORT_CONFIRMED", "order_id": f"o{n}",
        "exporter_wl": "wl-a", "importer_wl": "wl-b", "wl_a": "wl-a", "wl_b": "wl-b", "currency": "XPY-A",
        "amount": "1.25", "reference_value": "", "correlation_id": f"c,{n}\"{{x}}", "occur_time": occur,
        "node_sequence": 2**40 + n, "signal_id": "", "received_at": NOW, "signer_sha256": "ab" * 32,
        "payload": bytes([n % 256, 0, 255]) * 3, "signature": b"\x00sig",
    }


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(migrate, db_url)
    engine = db.create_engine(db_url)
    yield engine
    await engine.dispose()


async def test_fast_insert_round_trips_and_reports_duplicates(engine: AsyncEngine) -> None:
    rows = [_row(n, NOW - dt.timedelta(seconds=n) if n % 2 else None) for n in range(50)]
    async with engine.begin() as conn:
        assert await fast_insert(conn, t.events, rows) == 50
    async with engine.connect() as conn:
        stored = {r.event_id: r for r in (await conn.execute(sa.select(t.events))).all()}
        found = await select_in(conn, t.events, "event_id", ["e3", "e7", "nope"], ["event_id", "order_id"])
        by_any = (await conn.execute(sa.select(t.events.c.event_id).where(
            in_values(conn, t.events.c.event_id, ["e1", "e2", "zz"])))).scalars().all()
    assert sorted(found) == [("e3", "o3"), ("e7", "o7")]
    assert sorted(by_any) == ["e1", "e2"]
    for row in rows:
        got = stored[str(row["event_id"])]
        for column, value in row.items():
            assert getattr(got, column) == value, column
    # Skipping conflicts (unnest … ON CONFLICT DO NOTHING on PostgreSQL) counts only new rows.
    async with engine.begin() as conn:
        assert await fast_insert(conn, t.events, [_row(3, None), _row(60, NOW)], conflict=["event_id"]) == 1
    # Without ``conflict`` a collision raises and the transaction stores nothing.
    with pytest.raises(DuplicateKey):
        async with engine.begin() as conn:
            await fast_insert(conn, t.events, [_row(61, NOW), _row(4, NOW)])
    async with engine.connect() as conn:
        ids = set((await conn.execute(sa.select(t.events.c.event_id))).scalars())
    assert "e61" not in ids and len(ids) == 51
