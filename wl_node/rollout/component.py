"""The rollout feature of a node: FeatureFlagService on the local API (the caps themselves are enforced by the
order desk and the checkout, which build their ``RolloutRules`` from the same policy state)."""

from __future__ import annotations

from wl_node.context import NodeContext
from wl_node.policy.state import PolicyState
from xporty.node.v1 import feature_flag_service_pb2_grpc
from xwl_runtime.component import Component

from .flags import FlagBoard
from .rpc import SERVICE, FeatureFlagServicer


def install(ctx: NodeContext, state: PolicyState) -> Component:
    servicer = FeatureFlagServicer(FlagBoard(state, ctx.clock), state.wl_id)
    return Component(
        name="feature-flags",
        registrations=[lambda server: feature_flag_service_pb2_grpc.add_FeatureFlagServiceServicer_to_server(
            servicer, server)],
        service_names=[SERVICE])
