"""The local guard's bridge to the node's order ledger (the order desk's and checkout's tables).

* ``confirmed_facts`` reads what this node has confirmed per pair, to rebuild the guard's balances at start:
  exporter side = ``orders`` rows still CONFIRMED (a cancelled order has status CANCELLED); importer side =
  ``import_ledger`` rows (one per finalized import; a compensated checkout never gets one). Checkouts still
  PENDING are not facts: the checkout service holds them as reservations in flight (``CheckoutService.adopt_pending``)
  until the reconciler settles them.
* ``DeskGuard`` is the exporter-side hook: an ``OrderGuard`` for the order desk (runs inside the PlaceOrder
  transaction, in a worker thread) that reserves through the guard, and resolves each reservation once the
  transaction's outcome is known: at once through ``settle`` when the order desk reports it (it does after every
  commit, and after a rollback raised inside the transaction), or else, when the commit itself failed, by looking
  the order up (``resolve_pending``, run by the risk loop): CONFIRMED → confirm, DENIED or still absent after
  ``grace`` (rolled back) → release. Until resolved, the reservation counts as in flight.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wl_node.checkout.tables import import_ledger
from wl_node.orders.gate import OrderIntent
from wl_node.orders.tables import orders
from xwl_runtime.clock import Clock

from .local_guard import LocalGuard, Reservation

log = logging.getLogger(__name__)

RESOLVE_INTERVAL_S = 0.05
"""How often the order desk's unresolved reservations are looked up (only while there are some)."""
IDLE_CHECK_S = 30.0
"""With no reservation open the loop sleeps until one is made; this is only a safety net."""

Fact = tuple[str, str, Decimal]


def _dec(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


async def confirmed_facts(conn: AsyncConnection, wl_id: str) -> list[Fact]:
    """(exporter, importer, amount in the exporter's currency) for every order this node counts as confirmed."""
    facts: list[Fact] = []
    exported = await conn.execute(
        sa.select(orders.c.importer_wl, orders.c.total).where(orders.c.exporter_wl == wl_id,
                                                             orders.c.status == "CONFIRMED"))
    for importer, total in exported:
        if (amount := _dec(total)) is not None:
            facts.append((wl_id, importer, amount))
    imported = await conn.execute(sa.select(import_ledger.c.exporter_wl, import_ledger.c.source_amount))
    for exporter, amount_text in imported:
        if (amount := _dec(amount_text)) is not None:
            facts.append((exporter, wl_id, amount))
    return facts


@dataclass
class _Pending:
    intent: OrderIntent
    reservation: Reservation
    since: dt.datetime


class DeskGuard:
    """The order desk's ``OrderGuard`` backed by the local guard (see the module docstring)."""

    def __init__(self, guard: LocalGuard, clock: Clock, *, grace: dt.timedelta = dt.timedelta(seconds=30),
                 look_up_after: dt.timedelta = dt.timedelta(seconds=1)) -> None:
        self._guard = guard
        self._clock = clock
        self._grace = grace
        self._look_up_after = look_up_after
        """Reservations younger than this are left to the desk's ``settle`` (no lookups for orders in progress)."""
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str, int], list[_Pending]] = {}
        self._seen_orders: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._work = asyncio.Event()

    @staticmethod
    def _key(importer_wl: str, correlation_id: str, offer_id: str, quantity: int) -> tuple[str, str, str, int]:
        return importer_wl, correlation_id, offer_id, quantity

    def __call__(self, conn: sa.Connection, intent: OrderIntent) -> str | None:
        """``OrderGuard``: reserve (FAILED_PRECONDITION IMBALANCE_LIMIT rolls the PlaceOrder back)."""
        reservation = self._guard.reserve(intent.exporter_wl, intent.importer_wl, intent.total)
        key = self._key(intent.importer_wl, intent.correlation_id, intent.offer_id, intent.quantity)
        with self._lock:
            self._pending.setdefault(key, []).append(_Pending(intent, reservation, self._clock.now()))
        if self._loop is not None:  # called in the PlaceOrder transaction's worker thread: wake the loop safely
            self._loop.call_soon_threadsafe(self._work.set)
        return None

    def settle_order(self, importer_wl: str, correlation_id: str, offer_id: str, quantity: int,
                     order_id: str, confirmed: bool) -> None:
        """Fast path after PlaceOrder returned: confirm or release the matching reservation."""
        entry = self._pop(self._key(importer_wl, correlation_id, offer_id, quantity))
        if entry is None:
            return
        with self._lock:
            self._seen_orders.add(order_id)
        (entry.reservation.confirm if confirmed else entry.reservation.release)()

    def settle(self, intent: OrderIntent, order_id: str | None, confirmed: bool) -> None:
        """``SettlingGuard``: the order desk reports the transaction's outcome (``order_id`` None: rolled back)."""
        if order_id is not None:
            self.settle_order(intent.importer_wl, intent.correlation_id, intent.offer_id, intent.quantity, order_id,
                              confirmed)
            return
        entry = self._pop(self._key(intent.importer_wl, intent.correlation_id, intent.offer_id, intent.quantity))
        if entry is not None:
            entry.reservation.release()

    def _pop(self, key: tuple[str, str, str, int]) -> _Pending | None:
        with self._lock:
            entries = self._pending.get(key)
            if not entries:
                return None
            entry = entries.pop(0)
            if not entries:
                del self._pending[key]
            return entry

    @property
    def in_flight(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._pending.values())

    async def resolve_pending(self, conn: AsyncConnection) -> int:
        """Resolve reservations whose PlaceOrder transaction has ended; returns how many were resolved."""
        with self._lock:
            snapshot = [(k, list(v)) for k, v in self._pending.items()]
        resolved = 0
        now = self._clock.now()
        for key, entries in snapshot:
            entries = [e for e in entries if now - e.since >= self._look_up_after]
            if not entries:
                continue
            importer, cid, offer_id, quantity = key
            rows: Sequence[sa.Row[Any, Any]] = (await conn.execute(
                sa.select(orders.c.order_id, orders.c.status).where(
                    orders.c.importer_wl == importer, orders.c.correlation_id == cid,
                    orders.c.offer_id == offer_id, orders.c.quantity == quantity)
                .order_by(orders.c.created_at))).all()
            with self._lock:
                fresh = [r for r in rows if r.order_id not in self._seen_orders]
            for entry in entries:
                if fresh:
                    row = fresh.pop(0)
                    if self._take(key, entry):
                        with self._lock:
                            self._seen_orders.add(row.order_id)
                        (entry.reservation.confirm if row.status == "CONFIRMED" else entry.reservation.release)()
                        resolved += 1
                elif now - entry.since > self._grace and self._take(key, entry):
                    entry.reservation.release()  # no order after the grace period: its transaction rolled back
                    resolved += 1
        return resolved

    async def run(self, engine: AsyncEngine, stop: asyncio.Event, *,
                  interval_s: float = RESOLVE_INTERVAL_S) -> None:
        """Until ``stop``: every ``interval_s``, while reservations are open, ``resolve_pending`` on ``engine``;
        with none open, sleep until one is made."""
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            self._work.clear()
            busy = bool(self.in_flight)
            if busy:
                try:
                    async with engine.connect() as conn:
                        await self.resolve_pending(conn)
                except sa.exc.SQLAlchemyError:
                    log.exception("resolving the order desk's reservations failed")
            if busy:
                await self._clock.wait_any(stop, timeout=interval_s)
            else:
                await self._clock.wait_any(stop, self._work, timeout=IDLE_CHECK_S)

    def _take(self, key: tuple[str, str, str, int], entry: _Pending) -> bool:
        with self._lock:
            entries = self._pending.get(key)
            if not entries or entry not in entries:
                return False
            entries.remove(entry)
            if not entries:
                del self._pending[key]
            return True
