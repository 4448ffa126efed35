"""The go/no-go KPIs from the monthly rollups: cross-WL GMV per month and the conversion of imported offers.

* **GMV** of a month = the value of the orders that started counting in it, minus those that stopped counting in
  it (the balance rule), both directions of every pair, in the reference unit; per WL, the same for the orders it
  exported, in its own currency.
* **Conversion** of a month = views of imported offers (importers' reports) → checkouts (PlaceOrder operations
  the importers started) → completed orders (orders that started counting, net); rates are completed / views and
  checkouts / views, absent without views.

``scope`` restricts every figure to the pairs of one WL (a WL operator's view); None is every pair.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk.ledger import RISK_CONTEXT, ZERO

from . import tables as t

RATE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class MonthKpis:
    """One month's GMV and funnel."""

    month: dt.datetime
    gmv: Decimal
    """Reference unit."""
    gmv_by_wl: dict[str, Decimal]
    """Exports of each WL in its own currency."""
    views: int
    checkouts: int
    completed: int

    @property
    def conversion(self) -> Decimal | None:
        """completed / views (4 places), None without views."""
        return (Decimal(self.completed) / Decimal(self.views)).quantize(RATE_PLACES) if self.views else None

    @property
    def checkout_rate(self) -> Decimal | None:
        """checkouts / views (4 places), None without views."""
        return (Decimal(self.checkouts) / Decimal(self.views)).quantize(RATE_PLACES) if self.views else None


def scoped(table: sa.Table, scope: str | None) -> sa.ColumnElement[bool]:
    """Rows of the pairs of WL ``scope`` (every row when None)."""
    if scope is None:
        return sa.true()
    return sa.or_(table.c.wl_a == scope, table.c.wl_b == scope)


async def months(conn: AsyncConnection, *, scope: str | None = None, since: dt.datetime | None = None
                 ) -> list[MonthKpis]:
    """KPIs of every month with rollups (oldest first), from ``since`` (a month start) on."""
    m = t.months
    query = sa.select(m).where(scoped(m, scope))
    if since is not None:
        query = query.where(m.c.month >= since)
    gmv: dict[dt.datetime, Decimal] = defaultdict(lambda: ZERO)
    by_wl: dict[dt.datetime, dict[str, Decimal]] = defaultdict(dict)
    counts: dict[dt.datetime, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in (await conn.execute(query)).all():
        ab, ba = Decimal(r.exports_ab), Decimal(r.exports_ba)
        gmv[r.month] = RISK_CONTEXT.add(gmv[r.month], RISK_CONTEXT.add(ab, ba))
        wl = by_wl[r.month]
        for exporter, amount in ((r.wl_a, Decimal(r.amount_ab)), (r.wl_b, Decimal(r.amount_ba))):
            if amount:
                wl[exporter] = RISK_CONTEXT.add(wl.get(exporter, ZERO), amount)
        c = counts[r.month]
        c[0] += r.views_ab + r.views_ba
        c[1] += r.checkouts_ab + r.checkouts_ba
        c[2] += r.orders_ab + r.orders_ba
    return [MonthKpis(month, gmv[month], dict(sorted(by_wl[month].items())), *counts[month])
            for month in sorted(gmv)]
