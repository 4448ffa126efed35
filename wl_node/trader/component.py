"""The trader feature of a node: TraderService, the peer API, served by one servicer.

It owns the service and borrows its parts from the features it depends on: the catalog's feed (offer book
notifier), the order desk's RPC handlers, and the contact disclosure over the catalog's trader accounts.
"""

from __future__ import annotations

from dataclasses import dataclass

from wl_node.catalog.feed import FeedNotifier
from wl_node.context import NodeContext
from wl_node.orders.rpc import OrderRpc
from wl_node.policy.state import PolicyState
from wl_node.privacy.accounts import TraderAccounts
from wl_node.privacy.disclosure import ContactDisclosure
from xporty.trader.v1 import trader_service_pb2_grpc
from xwl_runtime.component import Component

from .servicer import SERVICE, TraderServicer


@dataclass
class Trader:
    """What ``install`` built."""

    component: Component
    servicer: TraderServicer


def install(ctx: NodeContext, state: PolicyState, *, notifier: FeedNotifier, orders: OrderRpc,
            accounts: TraderAccounts) -> Trader:
    """TraderService over the catalog's feed, the order desk and this WL's contact grants."""
    disclosures = ContactDisclosure(ctx.engine, accounts, ctx.clock, grants=frozenset(ctx.settings.contact_grants))
    servicer = TraderServicer(ctx.engine, state, ctx.clock, notifier, orders, disclosures,
                              heartbeat_s=ctx.settings.cadence.offer_heartbeat_s)

    async def end_streams() -> None:
        notifier.close()

    component = Component(
        name="trader",
        registrations=[lambda server: trader_service_pb2_grpc.add_TraderServiceServicer_to_server(servicer, server)],
        service_names=[SERVICE],
        on_drain=[end_streams],
    )
    return Trader(component, servicer)
