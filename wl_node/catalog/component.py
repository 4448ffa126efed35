"""The catalog feature of a node: this WL's exportable offers, the imported snapshot and the sync loop.

``build`` makes the offer book (what TraderService's feed serves), the imported snapshot and its read side
(what StorefrontService lists and the checkout buys from) and the sync job; the services themselves belong to
``wl_node.trader`` and ``wl_node.storefront``. Tests and the bench call ``build`` with a failure hook or sync
settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from wl_node.context import NodeContext
from wl_node.policy.state import PolicyState
from wl_node.privacy.accounts import TraderAccounts
from xporty.cp.v1 import policy_pb2
from xwl_runtime.component import Component

from .feed import FeedNotifier
from .imported_view import Availability, ImportedView
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
    view: ImportedView
    accounts: TraderAccounts
    """This WL's trader accounts (personal data, encrypted)."""


def build(
    ctx: NodeContext,
    policy: PolicyState,
    *,
    availability: Availability,
    sync_settings: SyncSettings | None = None,
    channel_factory: ChannelFactory | None = None,
    before_commit: BeforeCommit | None = None,
    run_sync: bool = True,
) -> Catalog:
    """Build the catalog feature of a node; ``availability(exporter)``: whether the checkout would try it now."""
    notifier = FeedNotifier()
    accounts = TraderAccounts(ctx.keyring, ctx.settings.wl_id)
    book = OfferBook(ctx.engine, ctx.clock, notifier, ctx.settings.wl_id, accounts)
    snapshot = ImportedCatalog(ctx.engine, ctx.clock, before_commit=before_commit)
    cadence = ctx.settings.cadence
    sync_settings = sync_settings or SyncSettings(
        stream_timeout_s=cadence.offer_stream_timeout_s, fallback_cap_s=cadence.offer_fallback_cap_s,
        supervisor_interval_s=cadence.catalog_supervisor_s)
    sync = CatalogSync(policy, snapshot, ctx.clock, ctx.tls, settings=sync_settings, channel_factory=channel_factory)
    if run_sync:
        ctx.metrics.track_sync_lag(sync.lags)

    async def wake_watchers(_view: policy_pb2.PolicyView) -> None:
        notifier.poke()  # open WatchOffers streams re-check the caller's grant at once

    policy.add_listener(wake_watchers)
    component = Component(name="catalog", loops=[sync.run] if run_sync else [])
    return Catalog(component, book, snapshot, sync, notifier, ImportedView(ctx.engine, availability), accounts)
