"""TxRunner and the raw-SQL hot path: group commit keeps each transaction's all-or-nothing, connections heal, raw
statements store exactly what SQLAlchemy Core stores."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from wl_node.orders.rawsql import Sql, db_time, is_sqlite, read_time
from wl_node.orders.txn import TxRunner
from xwl_runtime.sqltypes import UtcDateTime

meta = sa.MetaData()
items = sa.Table("txn_items", meta, sa.Column("k", sa.String(40), primary_key=True),
                 sa.Column("at", UtcDateTime, nullable=True))
_INSERT = Sql("INSERT INTO txn_items (k, at) VALUES (:k, :at)")


class Boom(Exception):
    pass


@pytest.fixture
async def runner(db_url: str):  # noqa: ANN201
    r = TxRunner(db_url)
    await r.tx(lambda conn: meta.create_all(conn))
    try:
        yield r
    finally:
        await r.close()


async def _keys(runner: TxRunner) -> set[str]:
    return set(await runner.read(lambda c: [row.k for row in c.execute(sa.select(items.c.k))]))


async def test_concurrent_transactions_commit_together_and_a_failing_one_leaves_nothing(runner: TxRunner) -> None:
    def ok(k: str):  # noqa: ANN202
        return lambda conn: (_INSERT.run(conn, {"k": k, "at": None}), k)[1]

    def failing(conn: sa.Connection) -> None:
        _INSERT.run(conn, {"k": "bad-1", "at": None})
        conn.execute(sa.insert(items).values(k="bad-2"))  # Core and raw statements share the transaction
        raise Boom()

    def duplicate(conn: sa.Connection) -> None:
        _INSERT.run(conn, {"k": "dup-new", "at": None})
        _INSERT.run(conn, {"k": "taken", "at": None})  # primary key already committed

    await runner.tx(ok("taken"))
    # Queued in one loop turn: on SQLite they run as one group (one SAVEPOINT each, one commit).
    jobs = [runner.tx(ok(f"k{i}")) for i in range(5)] + [runner.tx(failing), runner.tx(duplicate)]
    jobs += [runner.tx(ok(f"k{i}")) for i in range(5, 10)]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert results[:5] == [f"k{i}" for i in range(5)] and results[7:] == [f"k{i}" for i in range(5, 10)]
    assert isinstance(results[5], Boom)
    assert isinstance(results[6], sa.exc.IntegrityError)  # driver errors surface as SQLAlchemy's classes
    assert await _keys(runner) == {"taken", *(f"k{i}" for i in range(10))}  # nothing of the two failed ones


async def test_raw_times_are_what_core_stores(runner: TxRunner) -> None:
    at = dt.datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=dt.UTC)

    def write(conn: sa.Connection) -> None:
        _INSERT.run(conn, {"k": "raw", "at": db_time(is_sqlite(conn), at)})
        conn.execute(sa.insert(items).values(k="core", at=at))

    await runner.tx(write)

    def read(conn: sa.Connection) -> tuple[object, ...]:
        core = dict(conn.execute(sa.select(items.c.k, items.c.at)).all())
        stored = dict(conn.execute(sa.text("SELECT k, at FROM txn_items")).all())
        # Compared as stored (text on SQLite): range queries and ordering depend on the same format.
        return core["raw"], core["core"], stored["raw"], stored["core"]

    core_raw, core_core, stored_raw, stored_core = await runner.read(read)
    assert core_raw == core_core == at
    assert stored_raw == stored_core
    assert read_time(stored_raw) == at
    with pytest.raises(ValueError):
        db_time(True, at.replace(tzinfo=None))


@pytest.mark.postgres
async def test_a_broken_connection_is_replaced(postgres_db_url: str) -> None:
    runner = TxRunner(postgres_db_url, threads=1)
    try:
        await runner.tx(lambda conn: meta.create_all(conn))
        pid = await runner.tx(lambda conn: conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
        engine = sa.create_engine(postgres_db_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        engine.dispose()
        with pytest.raises(sa.exc.DBAPIError):
            await runner.tx(lambda conn: _INSERT.run(conn, {"k": "lost", "at": None}))
        await runner.tx(lambda conn: _INSERT.run(conn, {"k": "after", "at": None}))  # a new connection
        assert await _keys(runner) == {"after"}
    finally:
        await runner.close()


async def test_commit_listeners_run_after_each_commit_and_never_after_a_rollback(runner: TxRunner) -> None:
    """What wakes the event shipper and the reconciler instead of a poll: one call per committed transaction."""
    calls: list[set[str]] = []
    runner.add_commit_listener(lambda: calls.append(set()))

    def insert(key: str) -> object:
        return lambda conn: conn.execute(items.insert().values(k=key, at=None))

    await runner.tx(insert("a"))
    assert len(calls) == 1

    def failing(conn: sa.Connection) -> None:
        conn.execute(items.insert().values(k="b", at=None))
        raise Boom

    with pytest.raises(Boom):
        await runner.tx(failing)
    assert len(calls) == 1  # rolled back: no work for anyone
    await asyncio.gather(*(runner.tx(insert(f"c{i}")) for i in range(5)))
    assert len(calls) == 6
    assert await _keys(runner) == {"a", "c0", "c1", "c2", "c3", "c4"}
