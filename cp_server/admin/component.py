"""The admin component: AdminService (operators only: ``cp_server/authz.py``)."""

from __future__ import annotations

from cp_server.context import CpContext
from cp_server.identity.bootstrap import BootstrapTokens
from cp_server.policy.hub import PolicyHub
from cp_server.rollout.capabilities import NodeVersions
from cp_server.store.node_status import NodeStatusStore
from cp_server.store.pairs import PairPolicies
from cp_server.store.registry import WlRegistry
from cp_server.trust.admin import TrustAdmin
from xporty.cp.v1 import admin_service_pb2, admin_service_pb2_grpc
from xwl_runtime.component import Component

from .servicer import AdminServicer

SERVICE = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"]


def install(
    ctx: CpContext, *, registry: WlRegistry, pairs: PairPolicies, hub: PolicyHub, node_status: NodeStatusStore,
    trust: TrustAdmin, versions: NodeVersions | None = None,
) -> Component:
    """AdminService wired to the store, the hub, the audit log and CP-identity's bootstrap tokens."""
    servicer = AdminServicer(
        engine=ctx.engine, registry=registry, pairs=pairs, hub=hub, node_status=node_status, audit=ctx.audit,
        tokens=BootstrapTokens(ctx.engine, ctx.clock), clock=ctx.clock, trust=trust,
        versions=versions,
    )
    return Component(
        name="admin",
        registrations=[lambda server: admin_service_pb2_grpc.add_AdminServiceServicer_to_server(servicer, server)],
        service_names=[SERVICE.full_name],
    )
