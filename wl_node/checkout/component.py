"""The checkout feature's contribution to a WL node (importer side).

``install`` builds, over the node's trader client (``wl_node.peers``), the ``CheckoutService``, the compensation
outbox and the reconciler, and returns them with a ``Component`` carrying their background loops (outbox
delivery, reconciliation, personal-data retention). The StorefrontService servicer (``wl_node.storefront``)
delegates Checkout/GetCheckout to ``Checkouts.rpc``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from wl_node.context import NodeContext
from wl_node.metrics import OUTBOX_DEPTH
from wl_node.orders.gate import SignalGate
from wl_node.orders.txn import TxRunner
from wl_node.peers.client import PeerConfig, TraderPeers
from wl_node.peers.component import PeerClient
from wl_node.peers.tokens import TokenCache
from wl_node.policy.state import PolicyState
from xwl_runtime.component import Component
from xwl_runtime.metrics import Samples

from .offers import ImportedOffers
from .outbox import CompensationOutbox
from .reconciler import Reconciler
from .retention import RetentionLoop
from .rpc import CheckoutRpc
from .service import CheckoutService, ImportGuard
from .store import OWED_COUNT


@dataclass(frozen=True)
class CheckoutConfig:
    """Knobs of the importer side, with their defaults."""

    peers: PeerConfig = PeerConfig()
    in_doubt_after: dt.timedelta = dt.timedelta(seconds=2)
    """A PENDING checkout untouched this long is resolved by the reconciler (≫ the order deadline)."""
    reconcile_interval_s: float = 1.0
    """Reconciler period while some checkout is PENDING."""
    outbox_interval_s: float = 0.5
    """Shortest pause between compensation rounds while a compensation is owed."""
    reconcile_idle_s: float = 30.0
    """Reconciler period while nothing is PENDING (a commit wakes it sooner)."""
    outbox_idle_s: float = 30.0
    """Compensation outbox period while nothing is owed (a new compensation kicks it)."""


@dataclass
class Checkouts:
    """What ``install`` built."""

    component: Component
    service: CheckoutService
    rpc: CheckoutRpc
    peers: TraderPeers
    tokens: TokenCache
    outbox: CompensationOutbox
    reconciler: Reconciler
    runner: TxRunner


def install(
    ctx: NodeContext,
    state: PolicyState,
    client: PeerClient,
    offers: ImportedOffers,
    *,
    signal_gate: SignalGate | None = None,
    config: CheckoutConfig | None = None,
    runner: TxRunner | None = None,
    import_guard: ImportGuard | None = None,
) -> Checkouts:
    """Build the importer side of a node over its trader ``client`` (``wl_node.peers.component.install``)."""
    config = config or CheckoutConfig()
    own_runner = runner is None
    runner = runner or TxRunner(ctx.settings.db_url)
    peers = client.peers
    outbox = CompensationOutbox(runner, peers, ctx.clock, wl_id=state.wl_id, interval_s=config.outbox_interval_s,
                                idle_interval_s=config.outbox_idle_s)
    service = CheckoutService(runner=runner, state=state, offers=offers, peers=peers, clock=ctx.clock,
                              signal_gate=signal_gate, on_compensation=outbox.kick, import_guard=import_guard,
                              keyring=ctx.keyring)
    reconciler = Reconciler(runner, peers, service, ctx.clock, in_doubt_after=config.in_doubt_after,
                            interval_s=config.reconcile_interval_s, idle_interval_s=config.reconcile_idle_s)
    runner.add_commit_listener(reconciler.kick)  # a new checkout (any commit) ends the reconciler's idle wait
    rpc = CheckoutRpc(service)

    async def outbox_depth() -> Samples:
        async with ctx.engine.connect() as conn:
            owed = (await conn.execute(OWED_COUNT)).scalar_one()
        return {OUTBOX_DEPTH.name: [((), float(owed))]}

    ctx.metrics.track_store([OUTBOX_DEPTH], outbox_depth)
    component = Component(name="checkout", loops=[outbox.run, reconciler.run])
    if ctx.settings.pii_retention is not None:  # the personal part of old checkouts goes; the trade stays
        component.loops.append(RetentionLoop(ctx.engine, ctx.clock, ctx.settings.pii_retention).run)
    if own_runner:
        component.on_stop.append(runner.close)
    return Checkouts(component=component, service=service, rpc=rpc, peers=peers, tokens=client.tokens, outbox=outbox,
                     reconciler=reconciler, runner=runner)
