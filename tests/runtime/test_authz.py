"""The authorization tables: one rule per method, every served method covered, or no server starts."""

from __future__ import annotations

import pytest

from cp_server.authz import TABLE as CP_TABLE
from tests.support.pki import PkiFixture
from wl_node.authz import TABLE as NODE_TABLE
from xporty.cp.v1 import (
    admin_service_pb2,
    analytics_service_pb2,
    dashboard_service_pb2,
    identity_service_pb2,
    policy_service_pb2,
    rollout_service_pb2,
    signal_service_pb2,
    telemetry_service_pb2,
    webhook_service_pb2,
)
from xporty.node.v1 import feature_flag_service_pb2, storefront_service_pb2
from xporty.trader.v1 import trader_service_pb2
from xwl_runtime.authz import (
    HEALTH_METHODS,
    REFLECTION_METHODS,
    AuthzTableError,
    Rule,
    build,
    check_complete,
    methods,
    table,
)
from xwl_runtime.identity import Identity, Kind
from xwl_runtime.server import Listener, start_server
from xwl_runtime.tls import ReloadableServerCredentials

CP_MODULES = (admin_service_pb2, analytics_service_pb2, dashboard_service_pb2, identity_service_pb2,
              policy_service_pb2, rollout_service_pb2, signal_service_pb2, telemetry_service_pb2, webhook_service_pb2)
NODE_MODULES = (feature_flag_service_pb2, storefront_service_pb2, trader_service_pb2)
OPS_TOOLS = {*HEALTH_METHODS, *REFLECTION_METHODS}


def _all_methods(modules: tuple[object, ...]) -> set[str]:
    return {f"/{service.full_name}/{method.name}" for module in modules
            for service in module.DESCRIPTOR.services_by_name.values()  # type: ignore[attr-defined]
            for method in service.methods}


def test_each_binary_has_one_rule_for_exactly_the_methods_it_serves() -> None:
    assert set(CP_TABLE) == _all_methods(CP_MODULES) | OPS_TOOLS
    assert set(NODE_TABLE) == _all_methods(NODE_MODULES) | OPS_TOOLS


def test_a_second_rule_for_a_method_is_refused() -> None:
    rule = Rule(frozenset({Kind.OPS}))
    with pytest.raises(AuthzTableError, match="two rules for /x.S/M"):
        build(methods("x.S", ("M", "N"), rule), methods("x.S", ("M",), rule))


def test_a_served_method_without_a_rule_is_refused() -> None:
    trader = "xporty.trader.v1.TraderService"
    partial = table({f"/{trader}/ListOffers": Rule(frozenset({Kind.WL}))})
    with pytest.raises(AuthzTableError, match="no authorization rule for .*/PlaceOrder"):
        check_complete(partial, [trader], local_wl=None)
    with pytest.raises(AuthzTableError, match="unknown service"):
        check_complete(partial, ["xporty.nothing.v1.Nope"], local_wl=None)
    check_complete(NODE_TABLE, ["xporty.node.v1.StorefrontService", trader], local_wl="wl-a")


def test_rules_for_the_own_wl_need_the_servers_wl() -> None:
    with pytest.raises(AuthzTableError, match="server's WL id"):
        check_complete(NODE_TABLE, [], local_wl=None)


async def test_start_server_refuses_a_service_without_rules(pki: PkiFixture) -> None:
    creds = ReloadableServerCredentials(pki.material(Identity.cp()))
    with pytest.raises(AuthzTableError, match="no authorization rule for /xporty.cp.v1.WebhookService/AddWebhook"):
        await start_server(registrations=[], service_names=["xporty.cp.v1.WebhookService"],
                           listeners=[Listener("127.0.0.1:0", creds.credentials)],
                           authz_table=table({}))
