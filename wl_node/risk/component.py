"""The risk feature's contribution to a WL node: the enforcer's signal loop and the local guard's upkeep.

``install`` returns a ``RiskComponent`` — a ``Component`` that also carries the ``Enforcer``, the ``TradeGate``,
the ``LocalGuard`` and the order desk's ``DeskGuard`` — built first of the node's features (``NodeFeatures.risk``)
and handed to the features built after it:

* order desk: ``orders_component.install(..., signal_gate=risk.gate.signal_gate, guards=[risk.desk_guard])``;
* checkout: ``checkout_component.install(..., signal_gate=risk.gate.signal_gate)`` and ``risk.guard.reserve(...)``
  around PlaceOrder;
* catalog: ``risk.enforcer.add_listener(...)`` / ``add_pair_listener(...)`` to hide/mark the offers of a disabled
  direction or of a pair paused/blocked by signal (the storefront's availability already asks ``signal_gate``).

Loops: the enforcer (load persisted state, then watch signals) and the guard's upkeep (rebuild the balances from
the ledger at start, then resolve the order desk's reservations whose transactions ended).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from wl_node.context import NodeContext
from wl_node.cp_channel import CpChannel
from wl_node.policy.state import PolicyState
from xwl_runtime.backoff import Backoff
from xwl_runtime.component import Component

from .enforcer import Enforcer, EnforcerConfig
from .gate import TradeGate
from .ledger_view import DeskGuard, confirmed_facts
from .local_guard import LocalGuard

log = logging.getLogger(__name__)

NAME = "risk"


@dataclass
class RiskComponent(Component):
    """The component plus the handles other features are wired with."""

    enforcer: Enforcer = field(kw_only=True)
    gate: TradeGate = field(kw_only=True)
    guard: LocalGuard = field(kw_only=True)
    desk_guard: DeskGuard = field(kw_only=True)


def install(
    ctx: NodeContext,
    state: PolicyState,
    cp: CpChannel,
    config: EnforcerConfig | None = None,
    *,
    on_enqueued: Callable[[], None] | None = None,
) -> RiskComponent:
    """Build the enforcer, gate and local guard of this node (``on_enqueued``: e.g. the shipper's ``kick``)."""
    config = config or EnforcerConfig(reconnect_cap_s=ctx.settings.reconnect_cap.total_seconds())
    enforcer = Enforcer(ctx.engine, cp, ctx.clock, state.wl_id, config=config, on_enqueued=on_enqueued,
                        on_stage=lambda stage: ctx.metrics.signals.labels(stage).inc())
    guard = LocalGuard(state)
    desk_guard = DeskGuard(guard, ctx.clock)

    async def enforce(stop: asyncio.Event) -> None:
        backoff = Backoff(base_s=0.2, cap_s=config.reconnect_cap_s)
        while not stop.is_set():
            try:
                await enforcer.load()
                break
            except sa.exc.SQLAlchemyError:
                log.exception("loading the enforcer state failed; retrying")
                await ctx.clock.wait_any(stop, timeout=backoff.next_delay())
        await enforcer.run(stop)

    async def upkeep(stop: asyncio.Event) -> None:
        backoff = Backoff(base_s=0.2, cap_s=3.0)
        while not stop.is_set() and not guard.ready:
            try:
                async with ctx.engine.connect() as conn:
                    facts = await confirmed_facts(conn, state.wl_id)
                guard.load(facts)
            except sa.exc.SQLAlchemyError:
                log.exception("rebuilding the local guard failed; retrying")
                await ctx.clock.wait_any(stop, timeout=backoff.next_delay())
        await desk_guard.run(ctx.engine, stop)

    return RiskComponent(name=NAME, loops=[enforce, upkeep], enforcer=enforcer, gate=TradeGate(state, enforcer),
                         guard=guard, desk_guard=desk_guard)

