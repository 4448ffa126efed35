"""Durable compensation outbox: deliver CancelOrder to exporters until they acknowledge.

A row is written in the same transaction that marks a confirmed-but-not-finalized checkout CANCELLED; this loop
sends ``CancelOrder(cancel_key, order_id, reason)`` (the key makes redelivery harmless: the exporter restores
stock once) and closes the row on CANCELLED, on DENIED (nothing was reserved) or on NOT_FOUND. Failures are
retried with exponential backoff and full jitter per row; ``kick()`` starts a round at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random

import grpc

from wl_node.orders.txn import TxRunner
from wl_node.peers.client import PeerError, PeerUnavailable, TraderPeers
from xporty.trader.v1 import order_pb2
from xporty.trader.v1 import trader_service_pb2 as trader_pb
from xwl_runtime import correlation
from xwl_runtime.clock import Clock

from . import store

log = logging.getLogger(__name__)

BATCH = 50
CANCEL_TIMEOUT_S = 1.0


class CompensationOutbox:
    """Delivery loop of the ``compensations`` table."""

    def __init__(
        self, runner: TxRunner, peers: TraderPeers, clock: Clock, *, wl_id: str, interval_s: float = 0.5,
        base_backoff_s: float = 0.2, max_backoff_s: float = 30.0, rng: random.Random | None = None,
        idle_interval_s: float = 30.0,
    ) -> None:
        self._runner = runner
        self._peers = peers
        self._clock = clock
        self._wl_id = wl_id
        self._interval_s = interval_s
        self._idle_interval_s = idle_interval_s
        self._base = base_backoff_s
        self._cap = max_backoff_s
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """Deliver now instead of at the next tick."""
        self._wake.set()

    def _next_attempt(self, attempts: int) -> dt.datetime:
        delay = self._rng.uniform(0, min(self._cap, self._base * 2 ** min(attempts, 20)))
        return self._clock.now() + dt.timedelta(seconds=delay)

    async def deliver_due(self) -> int:
        """One round; returns how many rows were acknowledged."""
        now = self._clock.now()
        rows = await self._runner.read(lambda conn: store.due_compensations(conn, now, BATCH))
        acked = 0
        for row in rows:
            acked += await self._deliver(row)
        return acked

    async def _deliver(self, row: store.Row) -> int:
        token = correlation.current_correlation_id.set(row["correlation_id"])
        try:
            request = trader_pb.CancelOrderRequest(idempotency_key=row["cancel_key"], order_id=row["order_id"],
                                                   reason=row["reason"])
            try:
                order = await self._peers.cancel_order(row["exporter_wl"], request,
                                                       self._peers.deadline(CANCEL_TIMEOUT_S))
            except PeerUnavailable as err:
                return await self._later(row, f"{err.reason}: {err.message}")
            except PeerError as err:
                if err.code is grpc.StatusCode.NOT_FOUND:
                    return await self._ack(row, None, "ORDER_NOT_FOUND")
                return await self._later(row, f"{err.code.name}: {err.reason or err.message}")
            if order.status in (order_pb2.ORDER_STATUS_CANCELLED, order_pb2.ORDER_STATUS_DENIED):
                return await self._ack(row, order, "")
            return await self._later(row, f"unexpected order status {order.status}")
        finally:
            correlation.current_correlation_id.reset(token)

    async def _ack(self, row: store.Row, order: order_pb2.Order | None, note: str) -> int:
        now = self._clock.now()
        await self._runner.tx(lambda conn: store.acknowledge(conn, row, order, self._wl_id, note, now))
        log.info("compensation acknowledged", extra={"fields": {
            "checkout_id": row["checkout_id"], "order_id": row["order_id"], "exporter_wl": row["exporter_wl"],
            "note": note, "correlation_id": row["correlation_id"]}})
        return 1

    async def _later(self, row: store.Row, error: str) -> int:
        next_at = self._next_attempt(row["attempts"])
        await self._runner.tx(lambda conn: store.retry_later(conn, row, error, next_at))
        log.warning("compensation not delivered; will retry", extra={"fields": {
            "checkout_id": row["checkout_id"], "order_id": row["order_id"], "attempts": row["attempts"] + 1,
            "error": error, "correlation_id": row["correlation_id"]}})
        return 0

    async def _pause(self) -> float:
        """Until the next scheduled retry (at least ``interval_s``), or ``idle_interval_s`` when nothing is owed."""
        try:
            due = await self._runner.read(store.next_compensation_at)
        except Exception:  # noqa: BLE001 - the store failing: retry at the short interval
            log.exception("could not read the next compensation time")
            due = self._clock.now()
        if due is None:
            return self._idle_interval_s * self._rng.uniform(0.8, 1.2)
        left = (due - self._clock.now()).total_seconds()
        return min(self._idle_interval_s, max(self._interval_s * self._rng.uniform(0.8, 1.2), left))

    async def run(self, stop: asyncio.Event) -> None:
        """Background loop until ``stop``."""
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:  # noqa: BLE001 - a failing round (e.g. store down) is retried; the loop lives on
                log.exception("compensation round failed")
            await self._clock.wait_any(stop, self._wake, timeout=await self._pause())
