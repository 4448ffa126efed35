"""SLO breaches: each figure of the SLO report that goes from on target to BREACH opens a breach, once.

The rollout hold loop (``cp_server.rollout.hold.AutoHold``) is the CP's one SLO evaluator: every pass it computes
the report over its window and hands the figures here. A figure in BREACH without an open breach opens one
(``slo_breaches``) and, in that same transaction, queues the ``slo.breach`` webhook event, so the event exists
exactly when the breach was recorded; the opening is a conditional write, so CP replicas judging the same figures
queue it once. A figure back on target closes its breach and, in that transaction, queues ``slo.recovered`` (the
same conditional write: once per breach, whatever the number of replicas); the next breach is a new event. A figure
without data (or, for the checkout figures, with fewer order attempts than the hold's minimum) changes nothing: a
breach is neither opened nor closed by silence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.risk.sql import insert_ignore

from .report import Figure
from .tables import breaches

EVENT = "slo.breach"
RECOVERED = "slo.recovered"
CHECKOUT_FIGURES = frozenset({"confirmation_p99", "error_rate"})
"""Figures judged only with enough order attempts behind them."""

Enqueue = Callable[[AsyncConnection, str, dict[str, Any]], Awaitable[object]]
"""``enqueue(conn, event_type, data)`` in the caller's transaction (``WebhookOutbox.enqueue``)."""


def _text(value: Any) -> str:
    return "" if value is None else format(value, "f")


class SloBreaches:
    """Records breach openings and closings of SLO figures; queues ``slo.breach`` for each opening and
    ``slo.recovered`` for each closing."""

    def __init__(self, engine: AsyncEngine, enqueue: Enqueue | None, *, min_samples: int) -> None:
        self._engine = engine
        self._enqueue = enqueue
        self._min_samples = min_samples

    def _judged(self, f: Figure) -> bool:
        """Whether the figure has enough behind it to open or close a breach."""
        if f.value is None:
            return False
        return f.name not in CHECKOUT_FIGURES or f.samples >= self._min_samples

    async def judge(self, figures: Sequence[Figure], window: dt.timedelta, now: dt.datetime) -> list[Figure]:
        """Open and close breaches for ``figures``; returns the figures whose breach this call opened."""
        async with self._engine.connect() as conn:
            open_now = {(r.name, r.scope): r for r in (await conn.execute(
                sa.select(breaches.c.name, breaches.c.scope, breaches.c.value, breaches.c.opened_at)
                .where(breaches.c.open == sa.true()))).all()}
        judged = [f for f in figures if self._judged(f)]
        to_open = [f for f in judged if f.breach and (f.name, f.scope) not in open_now]
        to_close = [f for f in judged if not f.breach and (f.name, f.scope) in open_now]
        if not to_open and not to_close:
            return []  # the usual pass: nothing written
        opened: list[Figure] = []
        async with self._engine.begin() as conn:
            for f in to_close:
                breach = open_now[(f.name, f.scope)]
                closed = await conn.execute(breaches.update().where(
                    breaches.c.name == f.name, breaches.c.scope == f.scope, breaches.c.open == sa.true(),
                    breaches.c.opened_at == breach.opened_at).values(open=False, closed_at=now))
                if closed.rowcount and self._enqueue is not None:  # this replica closed it: the one event
                    await self._enqueue(conn, RECOVERED, {
                        **self._data(f, window), "breach_value": breach.value,
                        "opened_at": breach.opened_at.isoformat(), "recovered_at": now.isoformat()})
            for f in to_open:
                if await self._open(conn, f, now):
                    opened.append(f)
                    if self._enqueue is not None:
                        await self._enqueue(conn, EVENT, {**self._data(f, window), "opened_at": now.isoformat()})
        return opened

    @staticmethod
    def _data(f: Figure, window: dt.timedelta) -> dict[str, Any]:
        return {"figure": f.name, "scope": f.scope, "value": _text(f.value), "target": _text(f.target),
                "unit": f.unit, "samples": f.samples, "window_seconds": int(window.total_seconds())}

    @staticmethod
    async def _open(conn: AsyncConnection, f: Figure, now: dt.datetime) -> bool:
        values = {"open": True, "value": _text(f.value), "target": _text(f.target), "opened_at": now,
                  "closed_at": None}
        key = (breaches.c.name == f.name, breaches.c.scope == f.scope)
        reopened = await conn.execute(breaches.update().where(*key, breaches.c.open == sa.false()).values(**values))
        if reopened.rowcount:
            return True
        inserted = await conn.execute(insert_ignore(conn, breaches, ["name", "scope"])
                                      .values(name=f.name, scope=f.scope, **values))
        return bool(inserted.rowcount)
