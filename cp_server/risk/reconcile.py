"""Reconciliation loop: orders one side confirmed and the other never settled within the grace period.

* ``IMPORT_NOT_FINALIZED``: EXPORT_CONFIRMED received, no IMPORT_FINALIZED and no cancellation/compensation
  ``reconciliation_grace`` after the confirmation reached the CP.
* ``EXPORT_NOT_CONFIRMED``: IMPORT_FINALIZED received without any EXPORT_CONFIRMED or cancellation.

Each discrepancy is stored once (audited with the order's correlation id) and resolved automatically when the
missing event, or a cancellation, arrives. The CP is not on the data path and cannot cancel an order itself: the
nodes' outbox and reconciler compensate (checkout issue); the discrepancy makes the gap visible to operators.

The same loop re-runs the thresholds of pairs whose limit changed, and prunes trend samples older than two
trend windows.
"""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.signals.hub import SignalHub
from cp_server.signals.store import Auditor
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock

from . import tables as t
from .engine import CP_ACTOR, RiskEngine
from .settings import RiskSettings
from .sql import insert_ignore

log = logging.getLogger(__name__)


class Reconciler:
    """``await run_once()`` in tests; ``run(stop)`` as a component loop."""

    def __init__(
        self,
        engine: AsyncEngine,
        risk: RiskEngine,
        hub: SignalHub,
        audit: Auditor,
        settings: RiskSettings,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self._engine = engine
        self._risk = risk
        self._hub = hub
        self._audit = audit
        self._settings = settings
        self._clock = clock
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=10.0)

    async def run_once(self) -> int:
        """Detect new discrepancies, re-evaluate changed limits, prune; returns the number of new discrepancies."""
        now = self._clock.now()
        cutoff = now - self._settings.reconciliation_grace
        o, d = t.orders, t.discrepancies
        not_recorded = ~sa.exists().where(d.c.order_id == o.c.order_id)
        queries = {
            "IMPORT_NOT_FINALIZED": sa.and_(o.c.export_event_id.is_not(None), o.c.finalized_at.is_(None),
                                            o.c.cancelled_at.is_(None), o.c.confirmed_at <= cutoff),
            "EXPORT_NOT_CONFIRMED": sa.and_(o.c.finalized_at.is_not(None), o.c.export_event_id.is_(None),
                                            o.c.cancelled_at.is_(None), o.c.finalized_at <= cutoff),
        }
        found = 0
        async with self._risk.gate.begin() as conn:
            for reason, condition in queries.items():
                rows = (await conn.execute(
                    sa.select(o.c.order_id, o.c.exporter_wl, o.c.importer_wl, o.c.correlation_id)
                    .where(condition, not_recorded).order_by(o.c.first_seen_at).limit(1000)
                )).all()
                for r in rows:
                    inserted = await conn.execute(insert_ignore(conn, d, ["order_id", "reason"]).values(
                        order_id=r.order_id, reason=reason, exporter_wl=r.exporter_wl, importer_wl=r.importer_wl,
                        correlation_id=r.correlation_id, detect_time=now, resolved_at=None))
                    if inserted.rowcount:
                        found += 1
                        await self._audit.append(
                            conn, actor=CP_ACTOR, action="risk.discrepancy", subject=f"order/{r.order_id}",
                            before=None, after={"reason": reason, "exporter_wl": r.exporter_wl,
                                                "importer_wl": r.importer_wl},
                            correlation_id=r.correlation_id)
            p = t.balance_points
            await conn.execute(p.delete().where(p.c.at < now - 2 * self._settings.trend_window))
        if found:
            log.warning("reconciliation found discrepancies", extra={"fields": {"count": found}})
        signals = await self._risk.reevaluate_limits(now)
        if signals:
            await self._hub.publish(signals)
        return found

    async def run(self, stop: asyncio.Event) -> None:
        """Run every ``reconcile_interval`` until ``stop`` is set; back off with jitter on database errors."""
        delay = self._settings.reconcile_interval.total_seconds()
        while not stop.is_set():
            try:
                await self.run_once()
                self._backoff.reset()
                wait = delay
            except (sa.exc.SQLAlchemyError, OSError) as err:
                wait = self._backoff.next_delay()
                log.warning("reconciliation failed", extra={"fields": {"error": str(err), "retry_s": round(wait, 3)}})
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass
