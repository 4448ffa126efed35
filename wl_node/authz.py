"""Who may call each RPC of a WL node: the node's one authorization table, keyed by full method name.

Default deny: a method not listed is refused (PERMISSION_DENIED ``METHOD_NOT_ALLOWED``), and the node refuses to
start when it serves a method without a row here (``xwl_runtime.authz.check_complete``). The pipeline enforces
each row before the servicer runs; servicers check only what a method name cannot say — ownership of a resource
(a checkout belongs to the app that made it) and data scopes (the PII scope unmasks contacts).

Callers: ``spiffe://xporty/wl/<other>`` peer nodes; ``spiffe://xporty/wl/<this>/app/<name>`` this WL's own
services (an app of another WL is refused with ``NOT_THIS_WL``); ``spiffe://xporty/ops/<name>`` operators.
"""

from __future__ import annotations

from xporty.node.v1 import feature_flag_service_pb2, storefront_service_pb2
from xporty.trader.v1 import trader_service_pb2
from xwl_runtime.authz import ALL_KINDS, Rule, build, methods, ops_tools
from xwl_runtime.identity import Kind

STOREFRONT = storefront_service_pb2.DESCRIPTOR.services_by_name["StorefrontService"].full_name
TRADER = trader_service_pb2.DESCRIPTOR.services_by_name["TraderService"].full_name
FLAGS = feature_flag_service_pb2.DESCRIPTOR.services_by_name["FeatureFlagService"].full_name

PEER_NODES = Rule(frozenset({Kind.WL}))
"""Other WL nodes over mTLS; the order RPCs also verify the CP-issued JWT addressed to this WL."""
OWN_APPS = Rule(frozenset({Kind.APP}), same_wl=True)
"""This WL's own services only."""
OWN_APPS_AND_OPERATORS = Rule(frozenset({Kind.APP, Kind.OPS}), same_wl=True)
"""This WL's own services, and operators (reads, always masked for operators)."""

TABLE: dict[str, Rule] = build(
    # StorefrontService, the local API of this WL's own services.
    methods(STOREFRONT, ("PublishOffer", "UpdateOffer", "WithdrawOffer"), OWN_APPS),
    methods(STOREFRONT, ("Checkout", "GetCheckout"), OWN_APPS),
    methods(STOREFRONT, ("GetTraderContact",), OWN_APPS),  # and the PII scope (``NodeSettings.pii_apps``)
    methods(STOREFRONT, ("ListImportedOffers", "GetImportedOffer", "GetNodeState"), OWN_APPS_AND_OPERATORS),
    methods(STOREFRONT, ("WatchPairs", "WatchPairAlerts"), OWN_APPS_AND_OPERATORS),
    # FeatureFlagService, this WL's feature flags (local API).
    methods(FLAGS, ("GetFeatureFlags", "WatchFeatureFlags"), OWN_APPS_AND_OPERATORS),
    # TraderService, the peer API other WL nodes call.
    methods(TRADER, ("ListOffers", "WatchOffers"), PEER_NODES),  # filtered by the pair policy for the caller
    methods(TRADER, ("PlaceOrder", "CancelOrder", "GetOrder"), PEER_NODES),  # plus the JWT
    methods(TRADER, ("GetTraderContact",), PEER_NODES),  # plus this WL's contact grant to the caller
    # grpc.health.v1 and reflection.
    ops_tools(Rule(ALL_KINDS)),
)
