"""The trader client of a node: tokens from the CP and one channel, breaker and budget per exporter.

Built before the catalog and the checkout: the catalog shows an exporter's offers as unavailable while its
breaker is open (``TraderPeers.available``), and the checkout places orders through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wl_node.context import NodeContext
from wl_node.policy.state import PolicyState
from xporty.cp.v1 import policy_pb2
from xwl_runtime.component import Component
from xwl_runtime.identity import Identity
from xwl_runtime.tls import TlsMaterial

from .client import PeerConfig, TraderPeers
from .tokens import CpLease, TokenCache


@dataclass
class PeerClient:
    """What ``install`` built: the component (token refresh loop, channels closed on stop) and its parts."""

    component: Component
    peers: TraderPeers
    tokens: TokenCache

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


def install(ctx: NodeContext, state: PolicyState, cp: CpLease, config: PeerConfig) -> PeerClient:
    """The token cache fed by the CP and the trader client over it."""
    tokens = TokenCache(cp, ctx.clock, audiences=lambda: import_audiences(state))

    async def audiences_changed(_view: policy_pb2.PolicyView) -> None:
        tokens.poke()  # a newly importable exporter gets its token now, not at the next refresh

    state.add_listener(audiences_changed)
    peers = TraderPeers(state, ctx.tls, tokens, identity=Identity.wl(state.wl_id), config=config,
                        clock=ctx.clock, metrics=ctx.metrics)
    component = Component(name="peers", loops=[tokens.run], on_stop=[peers.close])
    return PeerClient(component, peers, tokens)
