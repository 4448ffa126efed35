"""The data of the Balance of trade page and of one pair's drill-down.

Balance of trade: every visible pair's exports each way, net delta, limit, utilisation, trend and time to limit
(``cp_server.risk.report``, the same figures as ``AnalyticsService/GetBalances``) and the daily cross-WL trade
of the visible pairs from the hourly rollups. A pair: the same figures, hourly (last 48 h) and daily (last 30 days)
series from its rollups with the net delta and utilisation at the end of each bucket (today's balance minus the
rollups after it), its latest compensation plan, and its recent orders — ids, amounts and states only (the CP
holds no personal data of a trade).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk import tables as rt
from cp_server.risk.ledger import RISK_CONTEXT, ZERO, Balance
from cp_server.risk.report import PairReport, balance_table
from cp_server.risk.thresholds import utilisation
from cp_server.rollups import tables as rollups
from cp_server.rollups.buckets import hour_of
from cp_server.store import schema
from xwl_runtime.errors import NotFound, PermissionDenied

from .access import Principal
from .model import Page, Table, Value, text
from .pages import util_text

HOURS_SHOWN = 48
DAYS_SHOWN = 30
RECENT_ORDERS = 20
PLAN_FIELDS = ("offer_id", "title", "unit_reference_value", "cover_quantity", "reference_value")
"""What a compensation plan row shows (never a contact)."""


def _row(r: PairReport) -> list[str | int | bool | None]:
    return [r.wl_a, r.wl_b, text(r.balance.exports_ab), text(r.balance.exports_ba), text(r.balance.net),
            text(r.limit), util_text(r.utilisation), text(r.trend_per_hour), text(r.time_to_limit), r.level.name]


BALANCE_COLUMNS = ["wl_a", "wl_b", "exports_ab", "exports_ba", "net_delta", "limit", "utilisation", "trend_per_hour",
                   "time_to_limit_s", "level"]


async def balance(conn: AsyncConnection, p: Principal, now: dt.datetime, window: dt.timedelta) -> Page:
    reports = await balance_table(conn, now=now, window=window, wl=p.wl)
    h = rollups.hours
    since = hour_of(now) - dt.timedelta(days=DAYS_SHOWN - 1, hours=hour_of(now).hour)
    query = sa.select(h.c.hour, h.c.exports_ab, h.c.exports_ba, h.c.orders_ab, h.c.orders_ba).where(h.c.hour >= since)
    if p.wl is not None:
        query = query.where(sa.or_(h.c.wl_a == p.wl, h.c.wl_b == p.wl))
    days: dict[dt.date, list[Decimal | int]] = defaultdict(lambda: [ZERO, 0])
    for r in (await conn.execute(query)).all():
        d = days[r.hour.date()]
        d[0] = RISK_CONTEXT.add(Decimal(d[0]), RISK_CONTEXT.add(Decimal(r.exports_ab), Decimal(r.exports_ba)))
        d[1] = int(d[1]) + r.orders_ab + r.orders_ba
    page = Page("balance", figures={"pairs": len(reports), "window_s": int(window.total_seconds())})
    page.tables["pairs"] = Table(BALANCE_COLUMNS, [_row(r) for r in reports])
    page.tables["daily"] = Table(["day", "traded_reference", "completed_orders"], [
        [day.isoformat(), text(Decimal(v[0])), int(v[1])] for day, v in sorted(days.items())])
    return page


async def pair(conn: AsyncConnection, p: Principal, wl_a: str, wl_b: str, now: dt.datetime,
               window: dt.timedelta) -> Page:
    """One pair (``wl_a`` < ``wl_b``); PERMISSION_DENIED outside the principal's WL, NOT_FOUND if unregistered."""
    if not p.may_see(wl_a, wl_b):
        raise PermissionDenied("this pair is not one of your WL's", reason="OTHER_WL")
    report = next((r for r in await balance_table(conn, now=now, window=window, pair=(wl_a, wl_b))), None)
    if report is None:
        raise NotFound(f"no pair {wl_a}/{wl_b}", reason="UNKNOWN_PAIR")
    status = (await conn.execute(sa.select(schema.pairs.c.status).where(
        schema.pairs.c.wl_a == wl_a, schema.pairs.c.wl_b == wl_b))).scalar_one()
    page = Page("pair", figures={
        "wl_a": wl_a, "wl_b": wl_b, "status": status, "exports_ab": text(report.balance.exports_ab),
        "exports_ba": text(report.balance.exports_ba), "net_delta": text(report.balance.net),
        "limit": text(report.limit), "utilisation": util_text(report.utilisation),
        "trend_per_hour": text(report.trend_per_hour), "time_to_limit_s": text(report.time_to_limit),
        "level": report.level.name})
    page.tables["pairs"] = Table(BALANCE_COLUMNS, [_row(report)])
    hourly, daily = await _series(conn, wl_a, wl_b, report, now)
    page.tables["hourly"], page.tables["daily"] = hourly, daily
    page.tables["plan"], page.figures["plan"] = await _plan(conn, wl_a, wl_b)
    page.tables["orders"] = await _orders(conn, wl_a, wl_b)
    return page


SERIES_COLUMNS = ["bucket", "exports_ab", "exports_ba", "orders_ab", "orders_ba", "views_ab", "views_ba",
                  "checkouts_ab", "checkouts_ba", "net_delta_end", "utilisation_end"]


async def _series(conn: AsyncConnection, wl_a: str, wl_b: str, report: PairReport, now: dt.datetime
                  ) -> tuple[Table, Table]:
    h = rollups.hours
    first_day = hour_of(now) - dt.timedelta(days=DAYS_SHOWN - 1, hours=hour_of(now).hour)
    rows = (await conn.execute(sa.select(h).where(h.c.wl_a == wl_a, h.c.wl_b == wl_b, h.c.hour >= first_day)
                               .order_by(h.c.hour))).all()
    # Net at the end of each bucket = today's net minus what the buckets after it added.
    net_after: dict[dt.datetime, Decimal] = {}
    net = report.balance.net
    for r in reversed(rows):
        net_after[r.hour] = net
        net = RISK_CONTEXT.subtract(net, RISK_CONTEXT.subtract(Decimal(r.exports_ab), Decimal(r.exports_ba)))
    hourly = Table(["hour", *SERIES_COLUMNS[1:]])
    days: dict[dt.date, _Bucket] = {}
    for r in rows:
        bucket = _Bucket([Decimal(r.exports_ab), Decimal(r.exports_ba)],
                         [r.orders_ab, r.orders_ba, r.views_ab, r.views_ba, r.checkouts_ab, r.checkouts_ba],
                         net_after[r.hour])
        if r.hour >= hour_of(now) - dt.timedelta(hours=HOURS_SHOWN - 1):
            hourly.rows.append([text(r.hour), *bucket.cells(report.limit)])
        day = days.get(r.hour.date())
        days[r.hour.date()] = bucket if day is None else day.then(bucket)
    daily = Table(["day", *SERIES_COLUMNS[1:]],
                  [[d.isoformat(), *b.cells(report.limit)] for d, b in sorted(days.items())])
    return hourly, daily


@dataclass(frozen=True)
class _Bucket:
    """Sums of one hour or day, and the net delta at its end."""

    decimals: list[Decimal]
    counts: list[int]
    net_end: Decimal

    def then(self, later: _Bucket) -> _Bucket:
        return _Bucket([RISK_CONTEXT.add(x, y) for x, y in zip(self.decimals, later.decimals, strict=True)],
                       [x + y for x, y in zip(self.counts, later.counts, strict=True)], later.net_end)

    def cells(self, limit: Decimal) -> list[Value]:
        return [*(text(d) for d in self.decimals), *self.counts, text(self.net_end),
                util_text(utilisation(self.net_end, limit))]


async def _plan(conn: AsyncConnection, wl_a: str, wl_b: str) -> tuple[Table, dict[str, str | None] | None]:
    s = rt.signals
    row = (await conn.execute(
        sa.select(s.c.issue_time, s.c.exporter_wl, s.c.importer_wl, s.c.plan_required, s.c.plan_offers,
                  s.c.correlation_id)
        .where(s.c.wl_a == wl_a, s.c.wl_b == wl_b, s.c.kind == "DISABLE").order_by(s.c.sequence.desc()).limit(1)
    )).first()
    table = Table(list(PLAN_FIELDS))
    if row is None:
        return table, None
    for offer in json.loads(row.plan_offers):
        table.rows.append([str(offer.get(f, "")) for f in PLAN_FIELDS])
    return table, {"disabled": f"{row.exporter_wl}->{row.importer_wl}", "issue_time": text(row.issue_time),
                   "required_reference_value": row.plan_required, "compensating": f"{row.importer_wl}->"
                   f"{row.exporter_wl}", "correlation_id": row.correlation_id}


async def _orders(conn: AsyncConnection, wl_a: str, wl_b: str) -> Table:
    o = rt.orders
    rows = (await conn.execute(
        sa.select(o.c.order_id, o.c.exporter_wl, o.c.importer_wl, o.c.first_seen_at, o.c.export_amount,
                  o.c.export_quantity, o.c.export_value, o.c.counted, o.c.agreement, o.c.cancelled_at,
                  o.c.compensated_at, o.c.correlation_id)
        .where(o.c.wl_a == wl_a, o.c.wl_b == wl_b).order_by(o.c.first_seen_at.desc()).limit(RECENT_ORDERS))).all()
    table = Table(["order_id", "exporter", "importer", "first_seen", "amount", "quantity", "reference_value",
                   "state", "correlation_id"])
    for r in rows:
        state = ("CANCELLED" if r.cancelled_at else "COMPENSATED" if r.compensated_at
                 else "COUNTED" if r.counted else r.agreement or "PENDING")
        table.rows.append([r.order_id, r.exporter_wl, r.importer_wl, text(r.first_seen_at), r.export_amount,
                           r.export_quantity, r.export_value, state, r.correlation_id])
    return table


__all__ = ["Balance", "balance", "pair"]
