"""The checkout feature's contribution to a WL node (importer side).

``install`` builds the trader client (channels, breakers, budgets per exporter), the token cache fed by the CP,
the ``CheckoutService``, the compensation outbox and the reconciler, and returns them with a ``Component``
carrying the authorization rules and the three background loops (token refresh, outbox delivery,
reconciliation). The StorefrontService servicer delegates Checkout/GetCheckout to ``Checkouts.rpc``; the catalog
reads ``Checkouts.peers.available(exporter_wl)`` to show an unreachable exporter's offers as unavailable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from wl_node.context import NodeContext
from wl_node.orders.gate import SignalGate
from wl_node.orders.txn import TxRunner
from wl_node.peers.client import PeerConfig, TraderPeers
from wl_node.peers.tokens import CpLease, TokenCache
from wl_node.policy.state import PolicyState
from wl_node.privacy.retention import RetentionLoop
from xporty.cp.v1 import policy_pb2
from xporty.node.v1 import storefront_service_pb2_grpc as pb_grpc
from xwl_runtime.component import Component
from xwl_runtime.identity import Identity
from xwl_runtime.tls import TlsMaterial

from .offers import ImportedOffers
from .outbox import CompensationOutbox
from .reconciler import Reconciler
from .rpc import SERVICE, CheckoutRpc, CheckoutStorefrontServicer
from .service import CheckoutService, ImportGuard


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

    def on_rotate(self, material: TlsMaterial) -> None:
        """Certificate rotation: peer channels are rebuilt with the new key pair."""
        self.peers.on_rotate(material)


def import_audiences(state: PolicyState) -> Iterable[str]:
    """Exporters this WL may import from now: the audiences to keep tokens for."""
    view = state.current()
    if view is None:
        return ()
    return sorted({
        d.exporter_wl for pair in view.pairs if pair.status == policy_pb2.RELATIONSHIP_STATUS_ACTIVE
        for d in pair.directions if d.importer_wl == state.wl_id and d.import_enabled
    })


def install(
    ctx: NodeContext,
    state: PolicyState,
    cp: CpLease,
    offers: ImportedOffers,
    *,
    enforcer: SignalGate | None = None,
    config: CheckoutConfig | None = None,
    runner: TxRunner | None = None,
    serve_storefront: bool = False,
    import_guard: ImportGuard | None = None,
) -> Checkouts:
    """Build the importer side of a node."""
    config = config or CheckoutConfig()
    own_runner = runner is None
    runner = runner or TxRunner(ctx.settings.db_url)
    tokens = TokenCache(cp, ctx.clock, audiences=lambda: import_audiences(state))

    async def audiences_changed(_view: policy_pb2.PolicyView) -> None:
        tokens.poke()  # a newly importable exporter gets its token now, not at the next refresh

    state.add_listener(audiences_changed)
    peers = TraderPeers(state, ctx.tls, tokens, identity=Identity.wl(state.wl_id), config=config.peers,
                        clock=ctx.clock, metrics=ctx.metrics)
    service = CheckoutService(runner=runner, state=state, offers=offers, peers=peers, clock=ctx.clock,
                              enforcer=enforcer, import_guard=import_guard, keyring=ctx.keyring)
    outbox = CompensationOutbox(runner, peers, ctx.clock, wl_id=state.wl_id, interval_s=config.outbox_interval_s,
                                idle_interval_s=config.outbox_idle_s)
    service._on_compensation = outbox.kick  # noqa: SLF001 - wired here, where both exist
    reconciler = Reconciler(runner, peers, service, ctx.clock, in_doubt_after=config.in_doubt_after,
                            interval_s=config.reconcile_interval_s, idle_interval_s=config.reconcile_idle_s)
    runner.add_commit_listener(reconciler.kick)  # a new checkout (any commit) ends the reconciler's idle wait
    rpc = CheckoutRpc(service)
    component = Component(name="checkout", loops=[tokens.run, outbox.run, reconciler.run], on_stop=[peers.close])
    if ctx.settings.pii_retention is not None:  # the personal part of old checkouts goes; the trade stays
        component.loops.append(RetentionLoop(ctx.engine, ctx.clock, ctx.settings.pii_retention).run)
    if own_runner:
        component.on_stop.append(runner.close)
    if serve_storefront:
        servicer = CheckoutStorefrontServicer(rpc)
        component.registrations.append(lambda server: pb_grpc.add_StorefrontServiceServicer_to_server(servicer,
                                                                                                        server))
        component.service_names.append(SERVICE)
    return Checkouts(component=component, service=service, rpc=rpc, peers=peers, tokens=tokens, outbox=outbox,
                     reconciler=reconciler, runner=runner)
