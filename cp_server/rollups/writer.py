"""Rollup deltas of one ingest batch and their write, inside the ingest transaction.

The risk engine adds every change of an order's counted value (``ledger.apply``'s delta) to its pair's
``PairDelta`` while it applies the batch, and writes the deltas with the balances, in the same transaction and
under the same pair locks (``RiskEngine._write_pairs``). A batch has one receipt time, so each touched pair moves
one hourly and one monthly row. Per table: one ``INSERT … ON CONFLICT DO NOTHING`` of zero rows, one ``SELECT`` of
the decimals, one ``UPDATE`` executemany (decimals set to their new sums, counters incremented in SQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk.ledger import RISK_CONTEXT, ZERO, dec_str
from cp_server.risk.sql import insert_ignore

from . import tables as t
from .buckets import hour_of, month_of


@dataclass
class PairDelta:
    """What one batch changed on one pair (a = smaller id)."""

    exports_ab: Decimal = ZERO
    exports_ba: Decimal = ZERO
    amount_ab: Decimal = ZERO
    amount_ba: Decimal = ZERO
    orders_ab: int = 0
    orders_ba: int = 0
    events: int = 0

    def moved(self, a_exports: bool, delta: Decimal, amount: Decimal | None) -> None:
        """An order of the direction exported by a (``a_exports``) or b changed its counted value by ``delta``
        (positive: it starts counting, negative: it stops); ``amount`` is its amount in the exporter's currency."""
        sign = 1 if delta > 0 else -1
        signed_amount = (amount or ZERO) if sign > 0 else -(amount or ZERO)
        if a_exports:
            self.exports_ab = RISK_CONTEXT.add(self.exports_ab, delta)
            self.amount_ab = RISK_CONTEXT.add(self.amount_ab, signed_amount)
            self.orders_ab += sign
        else:
            self.exports_ba = RISK_CONTEXT.add(self.exports_ba, delta)
            self.amount_ba = RISK_CONTEXT.add(self.amount_ba, signed_amount)
            self.orders_ba += sign

    @property
    def empty(self) -> bool:
        return not (self.events or self.orders_ab or self.orders_ba or self.exports_ab or self.exports_ba
                    or self.amount_ab or self.amount_ba)


def zero_row(wl_a: str, wl_b: str, bucket_column: str, bucket: dt.datetime) -> dict[str, Any]:
    """A rollup row with nothing counted yet."""
    return {"wl_a": wl_a, "wl_b": wl_b, bucket_column: bucket, **{c: "0" for c in t.DECIMALS},
            **{c: 0 for c in t.COUNTERS}}


async def ensure_rows(conn: AsyncConnection, table: sa.Table, bucket_column: str, bucket: dt.datetime,
                      keys: Sequence[tuple[str, str]]) -> None:
    """Create the (pair, bucket) rows that do not exist yet (zeros)."""
    await conn.execute(insert_ignore(conn, table, ["wl_a", "wl_b", bucket_column]),
                       [zero_row(a, b, bucket_column, bucket) for a, b in keys])


class RollupWriter:
    """Writes a batch's pair deltas into the hourly and monthly rollups."""

    async def write(self, conn: AsyncConnection, deltas: Iterable[tuple[str, str, PairDelta]],
                    at: dt.datetime) -> None:
        """Add ``deltas`` (per pair) to the buckets of ``at``; the caller holds the pairs' locks."""
        moved = sorted(((a, b, d) for a, b, d in deltas if not d.empty), key=lambda x: (x[0], x[1]))
        if not moved:
            return
        for table, column, bucket in ((t.hours, "hour", hour_of(at)), (t.months, "month", month_of(at))):
            await self._write(conn, table, column, bucket, moved)

    @staticmethod
    async def _write(conn: AsyncConnection, table: sa.Table, column: str, bucket: dt.datetime,
                     moved: list[tuple[str, str, PairDelta]]) -> None:
        keys = [(a, b) for a, b, _ in moved]
        await ensure_rows(conn, table, column, bucket, keys)
        c = table.c
        stored = {(r.wl_a, r.wl_b): r for r in (await conn.execute(
            sa.select(c.wl_a, c.wl_b, *(c[d] for d in t.DECIMALS))
            .where(c[column] == bucket, sa.tuple_(c.wl_a, c.wl_b).in_(keys)))).all()}
        params = []
        for a, b, d in moved:
            row = stored[(a, b)]
            params.append({
                "b_a": a, "b_b": b, "b_bucket": bucket,
                "b_exports_ab": dec_str(RISK_CONTEXT.add(Decimal(row.exports_ab), d.exports_ab)),
                "b_exports_ba": dec_str(RISK_CONTEXT.add(Decimal(row.exports_ba), d.exports_ba)),
                "b_amount_ab": dec_str(RISK_CONTEXT.add(Decimal(row.amount_ab), d.amount_ab)),
                "b_amount_ba": dec_str(RISK_CONTEXT.add(Decimal(row.amount_ba), d.amount_ba)),
                "b_orders_ab": d.orders_ab, "b_orders_ba": d.orders_ba, "b_events": d.events,
            })
        await conn.execute(
            table.update().where(c.wl_a == sa.bindparam("b_a"), c.wl_b == sa.bindparam("b_b"),
                                 c[column] == sa.bindparam("b_bucket"))
            .values({**{d: sa.bindparam(f"b_{d}") for d in t.DECIMALS},
                     "orders_ab": c.orders_ab + sa.bindparam("b_orders_ab"),
                     "orders_ba": c.orders_ba + sa.bindparam("b_orders_ba"),
                     "events": c.events + sa.bindparam("b_events")}),
            params,
        )
