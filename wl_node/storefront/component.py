"""The storefront feature of a node: StorefrontService, the local API of this WL's own services, served by one
servicer.

It owns the service and borrows its parts from the features built before it: the catalog (offer book, imported
view, the sync job's channels for contact requests), the checkout's handlers, the alert board's stream and the
risk enforcer's applied signals (for WatchPairs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wl_node.alerts.rpc import PairAlertsRpc
from wl_node.catalog.component import Catalog
from wl_node.checkout.rpc import CheckoutRpc
from wl_node.context import NodeContext
from wl_node.policy.state import PolicyState
from wl_node.risk.enforcer import Enforcer
from xporty.cp.v1 import audit_pb2
from xporty.node.v1 import storefront_service_pb2_grpc
from xwl_runtime.component import Component

from .contact_request import ContactRequester
from .pair_watch import PairWatch
from .servicer import SERVICE, StorefrontServicer


@dataclass
class Storefront:
    """What ``install`` built."""

    component: Component
    servicer: StorefrontServicer


def install(
    ctx: NodeContext,
    state: PolicyState,
    *,
    catalog: Catalog,
    checkouts: CheckoutRpc,
    alerts: PairAlertsRpc,
    enforcer: Enforcer,
    audit_checkpoint: Callable[[], audit_pb2.AuditCheckpoint | None],
    viewed: Callable[[str], None],
) -> Storefront:
    """StorefrontService over the features it serves; ``audit_checkpoint``: the CP audit head the node keeps;
    ``viewed(exporter_wl)``: told of every imported offer GetImportedOffer shows (the conversion funnel)."""
    servicer = StorefrontServicer(
        ctx.settings, state, catalog.book, catalog.view, checkouts=checkouts, alerts=alerts,
        pairs=PairWatch(state, enforcer), contacts=ContactRequester(state, ctx.tls, catalog.sync.channel_factory),
        audit_checkpoint=audit_checkpoint, viewed=viewed,
    )
    component = Component(
        name="storefront",
        registrations=[
            lambda server: storefront_service_pb2_grpc.add_StorefrontServiceServicer_to_server(servicer, server)],
        service_names=[SERVICE],
    )
    return Storefront(component, servicer)
