"""An importer node's local API for the checkout bench and the checkout tests, without the rest of the node,
buying from an in-memory catalog (``StaticImportedOffers``) instead of the synced snapshot.

The checkout runs on its production path (the node's one StorefrontService servicer, the node's authorization
table, the pipeline); the parts of the storefront the checkout does not use (offer book, imported view, alert
board, WatchPairs) are built but idle, and nothing reaches the CP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from wl_node.alerts.board import AlertBoard
from wl_node.alerts.rpc import PairAlertsRpc
from wl_node.catalog import component as catalog_component
from wl_node.checkout.component import Checkouts
from wl_node.checkout.offers import ImportedOfferTerms
from wl_node.context import NodeContext
from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.peers.component import PeerClient
from wl_node.policy.state import PolicyState
from wl_node.risk.enforcer import Enforcer
from wl_node.storefront import component as storefront_component
from wl_node.storefront.component import Storefront
from xwl_runtime.identity import Identity


def checkout_storefront(ctx: NodeContext, state: PolicyState, client: PeerClient, checkouts: Checkouts,
                        cp: CpChannel | None = None) -> Storefront:
    """The node's StorefrontService over ``checkouts``; ``cp``: the node's CP channel (one pointing nowhere when
    None: the enforcer is never run here)."""
    cp = cp or CpChannel(cp_channel_factory("127.0.0.1:1", reconnect_cap_s=1.0), ctx.tls,
                         identity=Identity.wl(state.wl_id))
    catalog = catalog_component.build(ctx, state, availability=client.peers.available, run_sync=False)
    return storefront_component.install(
        ctx, state, catalog=catalog, checkouts=checkouts.rpc, alerts=PairAlertsRpc(AlertBoard(), state.wl_id),
        enforcer=Enforcer(ctx.engine, cp, ctx.clock, state.wl_id), audit_checkpoint=lambda: None,
        viewed=lambda _exporter: None,
    )


class StaticImportedOffers:
    """An in-memory catalog for the checkout (tests, bench); ``available`` may be overridden per exporter."""

    def __init__(self, offers: Mapping[str, ImportedOfferTerms] | None = None,
                 available: Callable[[str], bool] | None = None) -> None:
        self._offers = dict(offers or {})
        self._available = available

    def put(self, offer: ImportedOfferTerms) -> None:
        self._offers[offer.imported_offer_id] = offer

    async def get(self, imported_offer_id: str) -> ImportedOfferTerms | None:
        offer = self._offers.get(imported_offer_id)
        if offer is not None and self._available is not None and not self._available(offer.exporter_wl):
            return replace(offer, available=False)
        return offer
