"""Reconciler: resolves checkouts left PENDING (in doubt) by asking the exporter with the same key.

A checkout is in doubt when its PlaceOrder got no definite answer (timeout, connection lost after sending, the
importer crashed between CONFIRMED and finalize). After ``in_doubt_after`` without progress — well beyond the
order deadline, and the exporter refuses to commit an order whose caller's deadline has passed — the reconciler
calls ``GetOrder(idempotency_key=order_key)``:

* CONFIRMED → the local sale was not recorded in time: CANCELLED locally and CancelOrder through the durable
  outbox (both sides end CANCELLED, stock restored);
* DENIED / CANCELLED → FAILED locally with the exporter's reason;
* NOT_FOUND → the order never committed: FAILED ``NOT_PLACED``;
* no answer → stays PENDING and is retried next round.

Cadence: every ``interval_s`` while some checkout is PENDING; otherwise the loop sleeps until ``kick()`` (the
transaction runner kicks after every commit, so a new checkout wakes it) or ``idle_interval_s`` passes.
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
from .service import CheckoutService

log = logging.getLogger(__name__)

BATCH = 100
GET_TIMEOUT_S = 1.0


class Reconciler:
    """Periodic resolution of in-doubt checkouts."""

    def __init__(
        self, runner: TxRunner, peers: TraderPeers, service: CheckoutService, clock: Clock, *,
        in_doubt_after: dt.timedelta = dt.timedelta(seconds=2), interval_s: float = 1.0,
        idle_interval_s: float = 30.0, rng: random.Random | None = None,
    ) -> None:
        self._runner = runner
        self._peers = peers
        self._service = service
        self._clock = clock
        self._in_doubt_after = in_doubt_after
        self._interval_s = interval_s
        self._idle_interval_s = idle_interval_s
        self._wake = asyncio.Event()
        self._busy = True  # until the first round has looked
        self._rng = rng or random.Random()
        self._adopted = False

    async def reconcile_once(self) -> int:
        """One round; returns how many checkouts were settled."""
        if not self._adopted:  # first round: the checkouts a restart left PENDING count as in flight again
            await self._service.adopt_pending()
            self._adopted = True
        older_than = self._clock.now() - self._in_doubt_after
        rows = await self._runner.read(lambda conn: store.in_doubt(conn, older_than, BATCH))
        settled = 0
        for row in rows:
            settled += await self._resolve(row)
        self._busy = await self._runner.read(store.any_pending)
        return settled

    def kick(self) -> None:
        """Work may have appeared (a commit): look now if the loop is idle (while busy it looks every interval)."""
        self._wake.set()

    async def _resolve(self, row: store.Row) -> int:
        token = correlation.current_correlation_id.set(row["correlation_id"])
        try:
            request = trader_pb.GetOrderRequest(idempotency_key=row["order_key"])
            try:
                order = await self._peers.get_order(row["exporter_wl"], request,
                                                    self._peers.deadline(GET_TIMEOUT_S))
            except PeerUnavailable as err:
                return await self._still_in_doubt(row, err.reason)
            except PeerError as err:
                if err.code is grpc.StatusCode.NOT_FOUND:
                    await self._service.settle_failed(row, "NOT_PLACED", None)
                    return 1
                return await self._still_in_doubt(row, err.code.name)
            if order.status == order_pb2.ORDER_STATUS_CONFIRMED:
                await self._service.compensate(row, order.order_id, "IMPORT_NOT_FINALIZED")
            else:
                await self._service.apply_outcome(row, order)
            log.info("in-doubt checkout resolved", extra={"fields": {
                "checkout_id": row["checkout_id"], "order_id": order.order_id,
                "exporter_status": order_pb2.OrderStatus.Name(order.status),
                "correlation_id": row["correlation_id"]}})
            return 1
        finally:
            correlation.current_correlation_id.reset(token)

    async def _still_in_doubt(self, row: store.Row, why: str) -> int:
        log.warning("in-doubt checkout not resolved yet", extra={"fields": {
            "checkout_id": row["checkout_id"], "exporter_wl": row["exporter_wl"], "cause": why,
            "correlation_id": row["correlation_id"]}})
        return 0

    async def run(self, stop: asyncio.Event) -> None:
        """Background loop until ``stop``."""
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.reconcile_once()
            except Exception:  # noqa: BLE001 - a failing round is retried; the loop lives on
                log.exception("reconciliation round failed")
                self._busy = True
            if self._busy:
                await self._clock.wait_any(stop, timeout=self._interval_s * self._rng.uniform(0.8, 1.2))
            else:
                await self._clock.wait_any(stop, self._wake,
                                           timeout=self._idle_interval_s * self._rng.uniform(0.8, 1.2))
