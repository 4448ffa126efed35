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
import functools
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

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


def _decimal_sum(conn: AsyncConnection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """An exact sum of a decimal rollup column per group: ``SUM`` of NUMERIC on PostgreSQL; on SQLite (decimal
    text, whose ``SUM`` would be a float) the group's values joined by spaces, added by ``_total``."""
    if conn.dialect.name == "postgresql":
        return sa.func.sum(column)
    return sa.func.group_concat(sa.type_coerce(column, sa.String()), " ")


def _total(value: Any) -> Decimal:
    """A ``_decimal_sum`` as a Decimal (added in the risk context on SQLite)."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return functools.reduce(RISK_CONTEXT.add, map(Decimal, str(value).split()), ZERO)


async def months(conn: AsyncConnection, *, scope: str | None = None, since: dt.datetime | None = None
                 ) -> list[MonthKpis]:
    """KPIs of every month with rollups (oldest first), from ``since`` (a month start) on.

    Grouped in SQL, in one statement (one snapshot: the totals and the per-WL figures agree under concurrent
    ingest): per month the totals (``wl`` empty), and per month and exporter its amounts (``wl`` = the exporter,
    amount in ``x``); the overview reads a few rows per month, not one per pair."""
    m = t.months
    where = [scoped(m, scope)] + ([m.c.month >= since] if since is not None else [])
    zero = sa.literal(0, sa.BigInteger())
    totals = (sa.select(sa.literal("", sa.String()).label("wl"), m.c.month,
                        _decimal_sum(conn, m.c.exports_ab).label("x"), _decimal_sum(conn, m.c.exports_ba).label("y"),
                        sa.func.sum(m.c.views_ab + m.c.views_ba).label("views"),
                        sa.func.sum(m.c.checkouts_ab + m.c.checkouts_ba).label("checkouts"),
                        sa.func.sum(m.c.orders_ab + m.c.orders_ba).label("completed"))
              .where(*where).group_by(m.c.month))
    per_wl = [sa.select(exporter.label("wl"), m.c.month, _decimal_sum(conn, amount).label("x"),
                        _decimal_sum(conn, amount).label("y"), zero, zero, zero)
              .where(*where).group_by(m.c.month, exporter)
              for exporter, amount in ((m.c.wl_a, m.c.amount_ab), (m.c.wl_b, m.c.amount_ba))]
    rows = (await conn.execute(sa.union_all(totals, *per_wl))).all()
    found: dict[dt.datetime, tuple[Decimal, int, int, int]] = {}
    by_wl: dict[dt.datetime, dict[str, Decimal]] = defaultdict(dict)
    for wl, month, x, y, views, checkouts, completed in rows:
        if wl:
            amounts = by_wl[month]
            amounts[wl] = RISK_CONTEXT.add(amounts.get(wl, ZERO), _total(x))
        else:
            found[month] = (RISK_CONTEXT.add(_total(x), _total(y)), int(views or 0), int(checkouts or 0),
                            int(completed or 0))
    return [MonthKpis(month, gmv, {wl: a for wl, a in sorted(by_wl[month].items()) if a}, views, checkouts, done)
            for month, (gmv, views, checkouts, done) in sorted(found.items())]
