"""The catalog's contribution to a WL node: StorefrontService, TraderService (offer feed), and the sync loop.

``wl_node/app.py`` calls ``install(ctx, policy)``; tests and the bench call ``build(...)`` to reach the parts
(offer book, snapshot, sync job) and to inject a failure hook or sync settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from wl_node.context import NodeContext
from wl_node.policy.state import PolicyState
from wl_node.privacy.accounts import TraderAccounts
from wl_node.privacy.contact_request import ContactRequester
from wl_node.privacy.disclosure import ContactDisclosure
from wl_node.storefront.imported_view import Availability, ImportedView
from wl_node.storefront.servicer import SERVICE as STOREFRONT_SERVICE
from wl_node.storefront.servicer import StorefrontServicer
from wl_node.trader.servicer import SERVICE as TRADER_SERVICE
from wl_node.trader.servicer import OrderHandlers, TraderServicer
from xporty.cp.v1 import policy_pb2
from xporty.node.v1 import storefront_service_pb2_grpc
from xporty.trader.v1 import trader_service_pb2_grpc
from xwl_runtime.component import Component

from .feed import FeedNotifier
from .offers import OfferBook
from .snapshot import BeforeCommit, ImportedCatalog
from .sync import CatalogSync, ChannelFactory, SyncSettings


@dataclass
class Catalog:
    """Everything ``build`` made."""

    component: Component
    book: OfferBook
    snapshot: ImportedCatalog
    sync: CatalogSync
    notifier: FeedNotifier
    trader: TraderServicer
    storefront: StorefrontServicer
    view: ImportedView
    accounts: TraderAccounts | None = None
    """This WL's trader accounts (personal data, encrypted)."""


def build(
    ctx: NodeContext,
    policy: PolicyState,
    *,
    orders: OrderHandlers | None = None,
    availability: Availability | None = None,
    sync_settings: SyncSettings | None = None,
    channel_factory: ChannelFactory | None = None,
    before_commit: BeforeCommit | None = None,
    run_sync: bool = True,
) -> Catalog:
    """Build the catalog feature of a node (``orders``: issue 4's order handlers, when installed)."""
    notifier = FeedNotifier()
    accounts = TraderAccounts(ctx.keyring, ctx.settings.wl_id)
    book = OfferBook(ctx.engine, ctx.clock, notifier, ctx.settings.wl_id, accounts)
    snapshot = ImportedCatalog(ctx.engine, ctx.clock, before_commit=before_commit)
    cadence = ctx.settings.cadence
    sync_settings = sync_settings or SyncSettings(
        stream_timeout_s=cadence.offer_stream_timeout_s, fallback_cap_s=cadence.offer_fallback_cap_s,
        supervisor_interval_s=cadence.catalog_supervisor_s)
    sync = CatalogSync(policy, snapshot, ctx.clock, ctx.tls, settings=sync_settings, channel_factory=channel_factory)
    disclosures = ContactDisclosure(ctx.engine, accounts, ctx.clock, grants=frozenset(ctx.settings.contact_grants))
    trader = TraderServicer(ctx.engine, policy, ctx.clock, notifier, orders, disclosures=disclosures,
                            heartbeat_s=cadence.offer_heartbeat_s)
    view = ImportedView(ctx.engine, availability)
    storefront = StorefrontServicer(ctx.settings, policy, book, view)
    storefront.attach_contacts(ContactRequester(policy, ctx.tls, sync.channel_factory))

    async def wake_watchers(_view: policy_pb2.PolicyView) -> None:
        notifier.poke()  # open WatchOffers streams re-check the caller's grant at once

    policy.add_listener(wake_watchers)
    component = Component(
        name="catalog",
        registrations=[
            lambda server: storefront_service_pb2_grpc.add_StorefrontServiceServicer_to_server(storefront, server),
            lambda server: trader_service_pb2_grpc.add_TraderServiceServicer_to_server(trader, server),
        ],
        service_names=[STOREFRONT_SERVICE, TRADER_SERVICE],
        loops=[sync.run] if run_sync else [],
    )
    return Catalog(component, book, snapshot, sync, notifier, trader, storefront, view, accounts)


def install(ctx: NodeContext, policy: PolicyState) -> Component:
    """The catalog component of a node: StorefrontService, TraderService and the sync loop."""
    return build(ctx, policy).component
