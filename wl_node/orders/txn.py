"""Short write transactions on the order/checkout hot path, run whole in a worker thread on a sync engine.

Why not the async engine: on this class of machine every awaited statement costs an event-loop round trip to the
driver (aiosqlite runs each statement in its own thread; async psycopg wakes the loop per round trip), measured at
~0.7–1.3 ms per statement versus ~0.05–0.25 ms for the same statement on a sync connection. PlaceOrder is eight
statements, so the async path alone would exceed the 5 ms p99 target. Running the whole transaction as one
function in a worker thread costs one hop per transaction and keeps the event loop free.

* SQLite: one writer thread with **group commit**. SQLite serializes writers anyway and each durable commit is an
  fsync; so the writer takes every transaction queued meanwhile, runs each inside its own SAVEPOINT (a failing one
  is rolled back alone, exactly as if it had run by itself) and commits them together with one fsync. Nobody gets
  an answer before that commit, so durability is unchanged; under load the fsync cost is shared. Same pragmas as
  ``xwl_runtime.db`` (WAL, ``synchronous=FULL``). Reads run on separate connections (WAL readers never block).
* PostgreSQL: a small thread pool with a connection pool of the same size; row locks and
  ``INSERT … ON CONFLICT`` do the serializing.

Transaction functions receive a ``sqlalchemy.Connection`` inside a transaction: returning commits, raising rolls
back (their own writes only). They must not touch the event loop or contextvars (pass the correlation id in).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from xwl_runtime import db, tracing

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_PG_THREADS = 8
SQLITE_READ_THREADS = 2
MAX_GROUP = 256

_Job = tuple[Callable[[sa.Connection], Any], asyncio.Future[Any]]


def _broken(conn: sa.Connection) -> bool:
    """True when the connection cannot be reused (closed, invalidated, or the driver says broken)."""
    if conn.closed or conn.invalidated:
        return True
    try:
        drv = conn.connection.driver_connection
    except sa.exc.SQLAlchemyError:
        return True
    return bool(getattr(drv, "broken", False) or getattr(drv, "closed", False) is True)


class _ThreadConnections:
    """One long-lived ``sa.Connection`` per worker thread.

    Why not ``engine.begin()`` per transaction: the pool checkout, reset-on-return ROLLBACK and (PostgreSQL)
    pre-ping cost a round trip and ~0.1 ms of Python each time; a thread's own connection also keeps psycopg's
    prepared statements warm. A connection that broke is dropped and replaced on next use.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._all: list[sa.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sa.Connection:
        conn: sa.Connection | None = getattr(self._local, "conn", None)
        if conn is None or _broken(conn):
            if conn is not None:
                self.drop(conn)
            conn = self._engine.connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def drop(self, conn: sa.Connection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.invalidate()
            conn.close()
        except sa.exc.SQLAlchemyError:  # already gone: nothing more to release
            pass

    def close_all(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sa.exc.SQLAlchemyError:
                log.warning("closing a transaction connection failed", exc_info=True)


class TxRunner:
    """Runs ``fn(conn)`` in a transaction in a worker thread; one per process and store."""

    def __init__(self, url: str, *, threads: int | None = None) -> None:
        self.url = url
        self.is_sqlite = db.is_sqlite(url)
        if self.is_sqlite:
            self._engine = sa.create_engine(db.sync_url(url), pool_size=1, max_overflow=0)
            # The same connection set-up as the async engine: WAL, synchronous=FULL, busy timeout, BEGIN IMMEDIATE.
            db.configure_sqlite(self._engine)
            self._read_engine = sa.create_engine(db.sync_url(url), pool_size=SQLITE_READ_THREADS, max_overflow=0)
            db.configure_sqlite(self._read_engine, writer=False)  # WAL readers: no BEGIN IMMEDIATE, never queue
            self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xcwl-tx")
            self._reader = concurrent.futures.ThreadPoolExecutor(SQLITE_READ_THREADS, thread_name_prefix="xcwl-rd")
        else:
            n = threads or DEFAULT_PG_THREADS
            # No pre-ping: connections are long-lived per thread and replaced when they break.
            self._engine = sa.create_engine(db.sync_url(url), pool_size=n, max_overflow=0)
            self._read_engine = self._engine
            self._writer = concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="xcwl-tx")
            self._reader = self._writer
        self._wconns = _ThreadConnections(self._engine)
        self._rconns = _ThreadConnections(self._read_engine) if self._read_engine is not self._engine else self._wconns
        self._queue: list[_Job] = []
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None  # kept: the loop holds only weak task references
        self._closed = False
        self._commit_listeners: list[Callable[[], None]] = []

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (on the event loop, must not block) after every committed ``tx`` — e.g. the event
        shipper's ``kick``, so events written in a transaction leave at once and the shipper never polls."""
        self._commit_listeners.append(listener)

    def _committed(self) -> None:
        for listener in self._commit_listeners:
            listener()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    # --- worker-thread side ---------------------------------------------------------------------------------
    def _transaction(self, body: Callable[[sa.Connection], T]) -> T:
        """``body(conn)`` in one transaction on this thread's connection: commit on return, roll back on raise."""
        conn = self._wconns.get()
        trans = conn.begin()
        try:
            result = body(conn)
            trans.commit()
        except BaseException:
            try:
                if trans.is_active:
                    trans.rollback()
            except sa.exc.SQLAlchemyError:
                self._wconns.drop(conn)
                raise
            if _broken(conn):
                self._wconns.drop(conn)
            raise
        return result

    def _run(self, fn: Callable[[sa.Connection], T]) -> T:
        return self._transaction(fn)

    def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        conn = self._rconns.get()
        try:
            with conn.begin():  # a short read transaction (SQLite: deferred, never blocks the writer)
                return fn(conn)
        except BaseException:
            if _broken(conn):
                self._rconns.drop(conn)
            raise

    @staticmethod
    def _group_body(fns: list[Callable[[sa.Connection], Any]]) -> Callable[[sa.Connection], list[tuple[bool, Any]]]:
        def body(conn: sa.Connection) -> list[tuple[bool, Any]]:
            # Raw SAVEPOINTs on the driver connection: SQLAlchemy's nested transactions cost ~0.1 ms each.
            drv: Any = conn.connection.driver_connection  # a DBAPI connection: set while ``conn`` is open
            outcomes: list[tuple[bool, Any]] = []
            for fn in fns:
                drv.execute("SAVEPOINT xcwl_tx")
                try:
                    result = fn(conn)
                except Exception as err:  # noqa: BLE001 - handed back to that function's caller
                    drv.execute("ROLLBACK TO SAVEPOINT xcwl_tx")
                    drv.execute("RELEASE SAVEPOINT xcwl_tx")
                    outcomes.append((False, err))
                else:
                    drv.execute("RELEASE SAVEPOINT xcwl_tx")
                    outcomes.append((True, result))
            return outcomes

        return body

    def _run_group(self, fns: list[Callable[[sa.Connection], Any]]) -> list[tuple[bool, Any]]:
        """One transaction, one SAVEPOINT per function, one commit. Returns (ok, result-or-exception) each."""
        return self._transaction(self._group_body(fns))

    # --- event-loop side ------------------------------------------------------------------------------------
    async def tx(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(conn)`` in one transaction (committed when it returns, rolled back when it raises)."""
        with tracing.span("db.transaction", **{"db.system": self.dialect}):  # a child span of the RPC's
            return await self._tx(fn)

    async def _tx(self, fn: Callable[[sa.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        if not self.is_sqlite:
            result = await loop.run_in_executor(self._writer, self._run, fn)
        else:
            future: asyncio.Future[T] = loop.create_future()
            self._queue.append((fn, future))
            if not self._draining:
                self._draining = True
                self._drain_task = loop.create_task(self._drain())
            result = await future
        self._committed()
        return result

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
                try:
                    if len(group) == 1:  # no savepoint needed
                        fn, fut = group[0]
                        outcomes = [(True, await loop.run_in_executor(self._writer, self._run, fn))]
                    else:
                        outcomes = await loop.run_in_executor(self._writer, self._run_group, [f for f, _ in group])
                except Exception as err:  # noqa: BLE001 - the commit (or the one transaction) failed: all fail
                    outcomes = [(False, err)] * len(group)
                for (_, fut), (ok, value) in zip(group, outcomes, strict=True):
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
        finally:
            self._draining = False

    async def read(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(conn)`` for reads (no writes expected)."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._read, fn)

    async def close(self) -> None:
        """Wait for running transactions, then release threads and connections."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._writer.shutdown, True)
        if self._reader is not self._writer:
            await loop.run_in_executor(None, self._reader.shutdown, True)
        self._wconns.close_all()
        if self._rconns is not self._wconns:
            self._rconns.close_all()
            self._read_engine.dispose()
        self._engine.dispose()
