"""The order desk's contribution to a WL node: the desk, its RPC handlers and the purge loop.

``install`` returns the component and the ``OrderRpc`` the TraderService servicer (``wl_node.trader``) delegates to.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from wl_node.context import NodeContext
from wl_node.policy.state import PolicyState
from xwl_runtime.clock import Clock
from xwl_runtime.component import BackgroundLoop, Component

from .desk import OrderDesk
from .gate import OrderGuard, SignalGate
from .idempotency import IdempotencyRecords
from .rpc import OrderRpc, policy_token_verifier
from .stock import OfferStock
from .txn import TxRunner

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 600.0


@dataclass
class Orders:
    """What ``install`` built."""

    component: Component
    desk: OrderDesk
    rpc: OrderRpc
    runner: TxRunner


def purge_loop(runner: TxRunner, records: IdempotencyRecords, clock: Clock, *, interval_s: float = PURGE_INTERVAL_S,
               rng: random.Random | None = None) -> BackgroundLoop:
    """A background loop deleting idempotency records past their retention, every ~``interval_s`` (jittered)."""
    rng = rng or random.Random()

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                now = clock.now()
                purged = await runner.tx(functools.partial(records.purge_expired, now=now))
                if purged:
                    log.info("idempotency records purged", extra={"fields": {"count": purged}})
            except Exception:  # noqa: BLE001 - a failed purge is retried next round; the loop must live on
                log.exception("idempotency purge failed")
            await clock.wait_any(stop, timeout=interval_s * rng.uniform(0.8, 1.2))

    return run


def install(
    ctx: NodeContext,
    state: PolicyState,
    stock: OfferStock,
    *,
    signal_gate: SignalGate | None = None,
    guards: Sequence[OrderGuard] = (),
    records: IdempotencyRecords | None = None,
    runner: TxRunner | None = None,
) -> Orders:
    """Build the order desk of a node (``runner`` is shared with the checkout feature when both are installed)."""
    records = records or IdempotencyRecords()
    own_runner = runner is None
    runner = runner or TxRunner(ctx.settings.db_url)
    desk = OrderDesk(runner=runner, state=state, stock=stock, clock=ctx.clock, idempotency=records,
                     signal_gate=signal_gate, guards=guards)
    rpc = OrderRpc(desk, policy_token_verifier(state, ctx.clock))
    component = Component(name="orders", loops=[purge_loop(runner, records, ctx.clock)])
    if own_runner:
        component.on_stop.append(runner.close)
    return Orders(component=component, desk=desk, rpc=rpc, runner=runner)
