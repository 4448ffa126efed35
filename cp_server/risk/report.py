"""The per-pair balance table with utilisation, level and trend (read side of the risk store).

Trend: ``net_delta`` is sampled after every ingest batch that moved it (``risk_balance_points``, CP receipt
time). The rate is ``(net_now − net_then) / (now − then)`` per hour, where *then* is the newest sample at or before
``now − trend_window`` (or, if none, the oldest sample inside the window). The projected time to the limit is
``(limit − |net|) / |rate|`` when the rate pushes ``|net|`` up, zero when the limit is already reached, and unset
when the balance is steady or improving.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.store import schema

from . import tables as t
from .ledger import RISK_CONTEXT, ZERO, Balance
from .thresholds import Level, utilisation

HOUR_S = Decimal(3600)


@dataclass(frozen=True)
class PairReport:
    """One row of the balance table."""

    wl_a: str
    wl_b: str
    balance: Balance
    limit: Decimal
    utilisation: Decimal
    trend_per_hour: Decimal
    time_to_limit: dt.timedelta | None
    level: Level


def trend(
    anchor: tuple[dt.datetime, Decimal] | None, net: Decimal, limit: Decimal, now: dt.datetime
) -> tuple[Decimal, dt.timedelta | None]:
    """(rate of net_delta per hour, projected time until |net| reaches ``limit``) from one anchor sample."""
    if anchor is None:
        return ZERO, (dt.timedelta(0) if limit > ZERO and abs(net) >= limit else None)
    at, then = anchor
    seconds = Decimal(str((now - at).total_seconds()))
    if seconds <= ZERO:
        return ZERO, None
    rate = RISK_CONTEXT.divide(RISK_CONTEXT.multiply(RISK_CONTEXT.subtract(net, then), HOUR_S), seconds)
    rate = rate.quantize(Decimal("0.000001"))
    if limit > ZERO and abs(net) >= limit:
        return rate, dt.timedelta(0)
    approaching = (rate > ZERO and net >= ZERO) or (rate < ZERO and net <= ZERO)
    if limit <= ZERO or not approaching:
        return rate, None
    hours = RISK_CONTEXT.divide(RISK_CONTEXT.subtract(limit, abs(net)), abs(rate))
    return rate, dt.timedelta(seconds=float(RISK_CONTEXT.multiply(hours, HOUR_S)))


async def _anchor(
    conn: AsyncConnection, wl_a: str, wl_b: str, since: dt.datetime
) -> tuple[dt.datetime, Decimal] | None:
    p = t.balance_points
    pair = (p.c.wl_a == wl_a, p.c.wl_b == wl_b)
    row = (await conn.execute(
        sa.select(p.c.at, p.c.net).where(*pair, p.c.at <= since).order_by(p.c.at.desc(), p.c.id.desc()).limit(1)
    )).first()
    if row is None:
        row = (await conn.execute(
            sa.select(p.c.at, p.c.net).where(*pair, p.c.at > since).order_by(p.c.at, p.c.id).limit(1)
        )).first()
    return (row.at, Decimal(row.net)) if row else None


async def balance_table(conn: AsyncConnection, *, now: dt.datetime, window: dt.timedelta,
                        pair: tuple[str, str] | None = None, wl: str | None = None) -> list[PairReport]:
    """Every registered pair (zero balances for pairs without events), ordered by (wl_a, wl_b); only ``pair``
    (wl_a, wl_b) or only the pairs of ``wl`` when given."""
    p = schema.pairs
    b = t.balances
    query = (sa.select(p.c.wl_a, p.c.wl_b, p.c.imbalance_limit, b.c.exports_ab, b.c.exports_ba, b.c.level)
             .select_from(p.outerjoin(b, sa.and_(b.c.wl_a == p.c.wl_a, b.c.wl_b == p.c.wl_b)))
             .order_by(p.c.wl_a, p.c.wl_b))
    if pair is not None:
        query = query.where(p.c.wl_a == pair[0], p.c.wl_b == pair[1])
    if wl is not None:
        query = query.where(sa.or_(p.c.wl_a == wl, p.c.wl_b == wl))
    rows = (await conn.execute(query)).all()
    out: list[PairReport] = []
    for r in rows:
        balance = Balance(Decimal(r.exports_ab or "0"), Decimal(r.exports_ba or "0"))
        limit = Decimal(r.imbalance_limit)
        anchor = await _anchor(conn, r.wl_a, r.wl_b, now - window) if r.level is not None else None
        rate, ttl = trend(anchor, balance.net, limit, now)
        out.append(PairReport(
            wl_a=r.wl_a, wl_b=r.wl_b, balance=balance, limit=limit, utilisation=utilisation(balance.net, limit),
            trend_per_hour=rate, time_to_limit=ttl, level=Level[r.level] if r.level else Level.OK,
        ))
    return out


async def utilisations(conn: AsyncConnection) -> list[tuple[str, str, Decimal]]:
    """(wl_a, wl_b, utilisation) of every registered pair against its current limit (0 without events)."""
    p, b = schema.pairs, t.balances
    rows = (await conn.execute(
        sa.select(p.c.wl_a, p.c.wl_b, p.c.imbalance_limit, b.c.exports_ab, b.c.exports_ba)
        .select_from(p.outerjoin(b, sa.and_(b.c.wl_a == p.c.wl_a, b.c.wl_b == p.c.wl_b)))
        .order_by(p.c.wl_a, p.c.wl_b))).all()
    return [(r.wl_a, r.wl_b, utilisation(Balance(Decimal(r.exports_ab or "0"), Decimal(r.exports_ba or "0")).net,
                                         Decimal(r.imbalance_limit))) for r in rows]


async def open_alerts(conn: AsyncConnection) -> dict[str, int]:
    """Open alerts by reason (``THRESHOLD``, or the reason of the discrepancy that raised it)."""
    a = t.alerts
    rows = (await conn.execute(sa.select(a.c.reason, sa.func.count()).where(a.c.open == sa.true())
                               .group_by(a.c.reason))).all()
    return {str(r[0]): int(r[1]) for r in rows}
