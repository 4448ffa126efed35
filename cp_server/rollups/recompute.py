"""Rebuild the rollups from the stored events alone and compare them with the incremental ones.

``recompute`` replays ``risk_events`` in receipt order (``received_at``, then id) through the balance rule
(``ledger.apply``), and adds each change of an order's counted value to the hour and the month of the CP's receipt
of the event that caused it, as the ingest transaction does. Within one bucket the order of replay does not
matter: what an order counts depends only on the set of its events, so a bucket's sum is the difference of the
counted state at its two ends. ``check`` lists every (pair, bucket) where stored and recomputed differ (views and
checkouts come from the nodes' reports, not from events, and are not compared).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.risk import tables as rt
from cp_server.risk.ledger import EventKind, OrderState, PairDelta, apply, pair_of
from cp_server.risk.recompute import _snapshot

from . import tables as t
from .buckets import hour_of, month_of

_PAGE = 10_000
_SALES = frozenset({EventKind.EXPORT_CONFIRMED, EventKind.IMPORT_FINALIZED})
Key = tuple[str, str, dt.datetime]
"""(wl_a, wl_b, bucket start)."""


@dataclass(frozen=True)
class Rebuilt:
    """Recomputed rollups per (pair, hour) and (pair, month)."""

    hours: dict[Key, PairDelta]
    months: dict[Key, PairDelta]


@dataclass(frozen=True)
class RollupMismatch:
    """A bucket whose stored rollup differs from the recomputation."""

    granularity: str
    key: Key
    stored: PairDelta
    recomputed: PairDelta


async def recompute(engine: AsyncEngine) -> Rebuilt:
    """Rollups per pair and bucket from ``risk_events`` alone."""
    async with _snapshot(engine) as conn:
        return await _recompute(conn)


async def _recompute(conn: AsyncConnection) -> Rebuilt:
    e = rt.events
    orders: dict[str, OrderState] = {}
    rebuilt = Rebuilt({}, {})
    last: tuple[dt.datetime, str] | None = None
    while True:
        query = (sa.select(e.c.event_id, e.c.kind, e.c.order_id, e.c.exporter_wl, e.c.importer_wl,
                           e.c.reference_value, e.c.amount, e.c.quantity, e.c.received_at)
                 .where(e.c.kind != EventKind.ENFORCEMENT_ACK.name)
                 .order_by(e.c.received_at, e.c.event_id).limit(_PAGE))
        if last is not None:
            query = query.where(sa.or_(e.c.received_at > last[0],
                                       sa.and_(e.c.received_at == last[0], e.c.event_id > last[1])))
        rows = (await conn.execute(query)).all()
        for r in rows:
            a, b = pair_of(r.exporter_wl, r.importer_wl)
            state = orders.get(r.order_id) or OrderState(r.order_id, r.exporter_wl, r.importer_wl)
            kind = EventKind[r.kind]
            value = Decimal(r.reference_value) if r.reference_value else None
            amount = Decimal(r.amount) if r.amount and kind in _SALES else None
            applied = apply(state, kind, r.event_id, value, amount, int(r.quantity))
            orders[r.order_id] = applied.state
            for table, bucket in ((rebuilt.hours, hour_of(r.received_at)), (rebuilt.months, month_of(r.received_at))):
                d = table.setdefault((a, b, bucket), PairDelta())
                d.events += 1
                if applied.delta:
                    d.moved(r.exporter_wl == a, applied.delta, applied.state.export_amount)
        if len(rows) < _PAGE:
            break
        last = (rows[-1].received_at, rows[-1].event_id)
    return rebuilt


def stored_delta(row: sa.Row[tuple[object, ...]]) -> PairDelta:
    """A stored rollup row's ledger columns."""
    m = row._mapping
    return PairDelta(Decimal(m["exports_ab"]), Decimal(m["exports_ba"]), Decimal(m["amount_ab"]),
                     Decimal(m["amount_ba"]), int(m["orders_ab"]), int(m["orders_ba"]), int(m["events"]))


def _same(x: PairDelta, y: PairDelta) -> bool:
    return (x.exports_ab, x.exports_ba, x.amount_ab, x.amount_ba, x.orders_ab, x.orders_ba, x.events) == (
        y.exports_ab, y.exports_ba, y.amount_ab, y.amount_ba, y.orders_ab, y.orders_ba, y.events)


async def check(engine: AsyncEngine) -> list[RollupMismatch]:
    """Buckets whose stored rollup differs from ``recompute`` (empty when consistent); one snapshot for both."""
    out: list[RollupMismatch] = []
    async with _snapshot(engine) as conn:
        rebuilt = await _recompute(conn)
        for name, table, column, want in (("hour", t.hours, "hour", rebuilt.hours),
                                          ("month", t.months, "month", rebuilt.months)):
            rows = (await conn.execute(sa.select(table))).all()
            have = {(r.wl_a, r.wl_b, r._mapping[column]): stored_delta(r) for r in rows}
            for key in sorted(have.keys() | want.keys()):
                s, w = have.get(key, PairDelta()), want.get(key, PairDelta())
                if not _same(s, w):
                    out.append(RollupMismatch(name, key, s, w))
    return out
