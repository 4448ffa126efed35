"""What each WL node last reported about its policy view, written in batches (group commit).

``ReportPolicyStatus`` from 50 nodes right after a change arrives in a burst; instead of one transaction (and on
SQLite one fsync) per report, reports that arrive while a batch is being written join the next batch, and each
caller is answered only once the batch holding its report has committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import node_status


@dataclass(frozen=True)
class NodeReport:
    """One node's report."""

    wl_id: str
    applied_version: int
    rejected_version: int
    last_error: str
    apply_time: dt.datetime | None
    report_time: dt.datetime


def _upsert_statement(dialect: str) -> sa.Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(node_status)
    return stmt.on_conflict_do_update(
        index_elements=[node_status.c.wl_id],
        set_={c: stmt.excluded[c] for c in
              ("applied_version", "rejected_version", "last_error", "apply_time", "report_time")},
    )


class NodeStatusStore:
    """Upserts reports in group commits; reads them back."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._batch: dict[str, NodeReport] = {}
        self._batch_done: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._upsert_stmt: sa.Insert | None = None

    async def report(self, report: NodeReport) -> None:
        """Store ``report`` (the latest report of a node wins within a batch); returns once committed."""
        if self._batch_done is None:
            self._batch_done = asyncio.get_running_loop().create_future()
        self._batch[report.wl_id] = report
        done = self._batch_done
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches(), name="node-status-writer")
        await asyncio.shield(done)

    async def _write_batches(self) -> None:
        while self._batch:
            batch, done = self._batch, self._batch_done
            self._batch, self._batch_done = {}, None
            assert done is not None
            try:
                await self._upsert(list(batch.values()))
            except Exception as err:  # noqa: BLE001 - handed to every waiter of this batch, who report it
                done.set_exception(err)
                done.exception()  # retrieved here too: waiters may all have been cancelled
            else:
                done.set_result(None)

    async def _upsert(self, reports: Sequence[NodeReport]) -> None:
        rows = [dict(r.__dict__) for r in reports]
        async with self._engine.begin() as conn:
            # One statement built once per store, executed with the batch's rows as parameter sets (an
            # executemany): a multi-VALUES statement would be a different statement, compiled anew, per size.
            if self._upsert_stmt is None:
                self._upsert_stmt = _upsert_statement(conn.dialect.name)
            await conn.execute(self._upsert_stmt, rows)

    async def all(self) -> dict[str, NodeReport]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(node_status))).mappings().all()
        return {r["wl_id"]: NodeReport(**dict(r)) for r in rows}

    async def close(self) -> None:
        """Wait for a batch in flight."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
