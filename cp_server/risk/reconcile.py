"""Reconciliation loop: the two sides of every order compared, by presence, amount and quantity.

Each pass (after ``reconciliation_grace`` where the other side may still be in flight):

* **grace settlement** — a confirmed, uncancelled order the two sides did not agree on within the grace period
  counts the exporter's side from now on (``RiskEngine.settle_expired``: a CP GRACE_EXPIRED event, balances and
  thresholds in one transaction);
* **discrepancies**, stored once per (order, reason) with both sides' amounts and quantities and the value in
  dispute, audited with the order's correlation id:

  - ``IMPORT_NOT_FINALIZED``: EXPORT_CONFIRMED received, no IMPORT_FINALIZED and no cancellation on either side;
  - ``EXPORT_NOT_CONFIRMED``: IMPORT_FINALIZED received without any EXPORT_CONFIRMED or cancellation;
  - ``AMOUNT_MISMATCH``: both sides reported the sale with different amounts or quantities (at once: both
    have spoken);
  - ``ONE_SIDED_CANCELLATION``: the exporter cancelled and the importer never compensated, or the importer
    compensated and the exporter never cancelled;

* **action** on every new discrepancy (SECURITY ones from ingest included): an alert (``risk_alerts`` with the
  discrepancy's reason, closed when the discrepancy resolves) and, in the alert's transaction, the
  ``on_discrepancy`` hook (the ``discrepancy.opened`` operator webhook), and for an amount mismatch or a one-sided
  cancellation whose disputed value exceeds ``RiskSettings.discrepancy_pause_value``, the pair is PAUSED through
  the policy path (``pause_pair``: a policy change, so the PAIR_STATUS signal and the policy views carry it).

Missing-side discrepancies resolve themselves when the missing event or a cancellation arrives, a one-sided
cancellation when the other side joins it; mismatches and security findings stay for an operator. The CP is not on
the data path and cannot cancel an order itself.

The same loop re-runs the thresholds of pairs whose limit changed, and prunes trend samples older than two
trend windows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.risk.signal_hub import SignalHub
from cp_server.risk.signal_store import Auditor
from cp_server.settings.risk import RiskSettings
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.errors import XcwlError

from . import tables as t
from .engine import CP_ACTOR, RiskEngine
from .ledger import RISK_CONTEXT, ZERO, Balance, dec_str, pair_of, reference_value
from .reference import load_reference
from .sql import insert_ignore
from .thresholds import Level, utilisation

log = logging.getLogger(__name__)

DiscrepancyHook = Callable[[AsyncConnection, dict[str, Any]], Awaitable[None]]
"""``hook(conn, discrepancy)`` in the transaction that acts on a new discrepancy (its alert and ``acted_at``)."""
PausePair = Callable[[str, str, str], Awaitable[None]]
"""``pause(wl_a, wl_b, reason)``: set the pair PAUSED through the policy store (wired by the composition root)."""
RECONCILIATION = "RECONCILIATION"
PAUSING = frozenset({"AMOUNT_MISMATCH", "ONE_SIDED_CANCELLATION"})
"""Discrepancies where the two sides contradict each other: over the pause value they pause the pair. A missing
side (a node down past the grace period, or a phantom order) alerts only: the balance rule already counts the
exporter's side."""


def _dec(text: str | None) -> Decimal | None:
    return Decimal(text) if text else None


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
        pause_pair: PausePair | None = None,
    ) -> None:
        self._engine = engine
        self._risk = risk
        self._hub = hub
        self._audit = audit
        self._settings = settings
        self._clock = clock
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=10.0)
        self.pause_pair = pause_pair
        """How a pair gets PAUSED (None: discrepancies alert but never pause, e.g. a CP without the policy
        store)."""
        self.on_discrepancy: DiscrepancyHook | None = None
        """Called once per discrepancy, in the transaction that raises its alert (wired by the composition
        root: operator webhooks)."""

    async def run_once(self) -> int:
        """Settle, detect, act, re-evaluate changed limits, prune; returns the number of new discrepancies."""
        now = self._clock.now()
        cutoff = now - self._settings.reconciliation_grace
        signals = await self._risk.settle_expired(now, cutoff)
        o, d = t.orders, t.discrepancies
        exporter_only = sa.and_(o.c.cancelled_at.is_not(None), o.c.compensated_at.is_(None),
                                o.c.cancelled_at <= cutoff)
        importer_only = sa.and_(o.c.compensated_at.is_not(None), o.c.cancelled_at.is_(None),
                                o.c.compensated_at <= cutoff)
        queries = {
            "IMPORT_NOT_FINALIZED": sa.and_(o.c.export_event_id.is_not(None), o.c.finalized_at.is_(None),
                                            o.c.cancelled_at.is_(None), o.c.compensated_at.is_(None),
                                            o.c.confirmed_at <= cutoff),
            "EXPORT_NOT_CONFIRMED": sa.and_(o.c.finalized_at.is_not(None), o.c.export_event_id.is_(None),
                                            o.c.cancelled_at.is_(None), o.c.finalized_at <= cutoff),
            "AMOUNT_MISMATCH": o.c.agreement == "MISMATCH",
            "ONE_SIDED_CANCELLATION": sa.or_(exporter_only, importer_only),
        }
        found = 0
        async with self._risk.gate.begin() as conn:
            ref = await load_reference(conn)
            for reason, condition in queries.items():
                rows = (await conn.execute(
                    sa.select(o).where(condition,
                                       ~sa.exists().where(d.c.order_id == o.c.order_id, d.c.reason == reason))
                    .order_by(o.c.first_seen_at).limit(1000)
                )).mappings().all()
                for r in rows:
                    rate = ref.wls[r["exporter_wl"]].reference_rate if r["exporter_wl"] in ref.wls else ZERO
                    values = self._discrepancy(reason, r, rate)
                    inserted = await conn.execute(insert_ignore(conn, d, ["order_id", "reason"]).values(
                        order_id=r["order_id"], reason=reason, exporter_wl=r["exporter_wl"],
                        importer_wl=r["importer_wl"], correlation_id=r["correlation_id"], detect_time=now,
                        resolved_at=None, category=RECONCILIATION, **values))
                    if inserted.rowcount:
                        found += 1
                        await self._audit.append(
                            conn, actor=CP_ACTOR, action="risk.discrepancy", subject=f"order/{r['order_id']}",
                            before=None, after={"reason": reason, "exporter_wl": r["exporter_wl"],
                                                "importer_wl": r["importer_wl"],
                                                "disputed_value": values["disputed_value"]},
                            correlation_id=r["correlation_id"])
            p = t.balance_points
            await conn.execute(p.delete().where(p.c.at < now - 2 * self._settings.trend_window))
        if found:
            log.warning("reconciliation found discrepancies", extra={"fields": {"count": found}})
        await self._act(now)
        signals += await self._risk.reevaluate_limits(now)
        if signals:
            await self._hub.publish(signals)
        return found

    @staticmethod
    def _discrepancy(reason: str, r: Any, rate: Decimal) -> dict[str, Any]:
        """Both sides' reports and the value in dispute (reference unit) of an order's discrepancy."""
        export_value = _dec(r["export_value"]) or ZERO
        disputed: Decimal | None = None
        if reason == "AMOUNT_MISMATCH":
            ea, ia = _dec(r["export_amount"]) or ZERO, _dec(r["import_amount"]) or ZERO
            disputed = (export_value if r["export_quantity"] != r["import_quantity"]
                        else reference_value(abs(RISK_CONTEXT.subtract(ea, ia)), rate))
        elif reason in ("ONE_SIDED_CANCELLATION", "IMPORT_NOT_FINALIZED"):
            disputed = export_value
        return {"export_amount": r["export_amount"], "import_amount": r["import_amount"],
                "export_quantity": r["export_quantity"], "import_quantity": r["import_quantity"],
                "disputed_value": dec_str(disputed) if disputed is not None else None}

    async def _act(self, now: dt.datetime) -> None:
        """Alert on every discrepancy not yet acted on, and pause its pair when its disputed value is over the
        limit (the pause first: if the alert's transaction then fails, the next pass finds the pair paused)."""
        d = t.discrepancies
        async with self._engine.connect() as conn:
            pending = (await conn.execute(
                sa.select(d).where(d.c.acted_at.is_(None), d.c.resolved_at.is_(None))
                .order_by(d.c.detect_time).limit(1000)
            )).mappings().all()
        for r in pending:
            a, b = pair_of(r["exporter_wl"], r["importer_wl"])
            disputed = _dec(r["disputed_value"])
            paused = False
            if (r["reason"] in PAUSING and disputed is not None
                    and disputed > self._settings.discrepancy_pause_value and self.pause_pair is not None):
                paused = await self._pause(a, b, r)
            async with self._risk.gate.begin() as conn:
                key = (d.c.order_id == r["order_id"], d.c.reason == r["reason"])
                # Claimed first, conditionally: a concurrent pass (another CP replica) acts on it once.
                claimed = await conn.execute(d.update().where(*key, d.c.acted_at.is_(None)).values(acted_at=now))
                if not claimed.rowcount:
                    continue
                alert_id = await self._alert(conn, a, b, r, now)
                await conn.execute(d.update().where(*key).values(alert_id=alert_id))
                if self.on_discrepancy is not None:
                    await self.on_discrepancy(conn, {**dict(r), "alert_id": alert_id, "pair_paused": paused})

    async def _pause(self, a: str, b: str, r: Any) -> bool:
        """Pause the pair over discrepancy ``r``; True when this call paused it."""
        async with self._engine.connect() as conn:
            ref = await load_reference(conn, {(a, b)})
        pair = ref.pairs.get((a, b))
        if pair is None or pair.status != "ACTIVE" or self.pause_pair is None:
            return False
        reason = f"{r['reason']} on order {r['order_id'][:64]}: disputed value {r['disputed_value']}"
        try:
            await self.pause_pair(a, b, reason)
        except XcwlError as err:
            log.error("pausing a pair after a discrepancy failed", extra={"fields": {
                "wl_a": a, "wl_b": b, "reason": err.reason}})
            raise
        log.warning("pair paused after a discrepancy", extra={"fields": {
            "wl_a": a, "wl_b": b, "reason": r["reason"], "order_id": r["order_id"]}})
        return True

    async def _alert(self, conn: AsyncConnection, a: str, b: str, r: Any, now: dt.datetime) -> str:
        bal = t.balances
        row = (await conn.execute(sa.select(bal.c.exports_ab, bal.c.exports_ba, bal.c.limit_used)
                                  .where(bal.c.wl_a == a, bal.c.wl_b == b))).first()
        u = (utilisation(Balance(Decimal(row.exports_ab), Decimal(row.exports_ba)).net, Decimal(row.limit_used))
             if row is not None else ZERO)
        alert_id = uuid.uuid4().hex
        await conn.execute(t.alerts.insert().values(
            alert_id=alert_id, wl_a=a, wl_b=b, level=Level.ALERT.name, utilisation=dec_str(u),
            correlation_id=r["correlation_id"], event_id=r["event_id"] or "", raise_time=now, open=True,
            reason=r["reason"]))
        await self._audit.append(conn, actor=CP_ACTOR, action="risk.alert.raise", subject=f"pair/{a}/{b}",
                                 before=None, after={"alert_id": alert_id, "reason": r["reason"],
                                                     "order_id": r["order_id"], "category": r["category"],
                                                     "disputed_value": r["disputed_value"]},
                                 correlation_id=r["correlation_id"])
        return alert_id

    async def run(self, stop: asyncio.Event) -> None:
        """Run every ``reconcile_interval`` until ``stop`` is set; back off with jitter on database errors."""
        delay = self._settings.reconcile_interval.total_seconds()
        while not stop.is_set():
            try:
                await self.run_once()
                self._backoff.reset()
                wait = delay
            except (sa.exc.SQLAlchemyError, OSError, XcwlError) as err:
                wait = self._backoff.next_delay()
                log.warning("reconciliation failed", extra={"fields": {"error": str(err)[:200],
                                                                        "retry_s": round(wait, 3)}})
            await self._clock.wait_any(stop, timeout=wait)
