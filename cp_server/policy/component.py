"""The policy component: PolicyService, the hub's reload loop and, on PostgreSQL, its LISTEN loop."""

from __future__ import annotations

from cp_server.context import CpContext
from cp_server.store.node_status import NodeStatusStore
from xporty.cp.v1 import policy_service_pb2, policy_service_pb2_grpc
from xwl_runtime.component import BackgroundLoop, Component
from xwl_runtime.db import is_sqlite
from xwl_runtime.notify import NotifyListener

from .hub import PolicyHub
from .servicer import PolicyServicer, VersionRecorder

SERVICE = policy_service_pb2.DESCRIPTOR.services_by_name["PolicyService"]


def install(ctx: CpContext, *, hub: PolicyHub, node_status: NodeStatusStore,
            versions: VersionRecorder | None = None) -> Component:
    """PolicyService: WL nodes read their own view and report; operators read any view (grpcurl)."""
    servicer = PolicyServicer(hub, node_status, ctx.clock, ctx.settings.heartbeat_interval, versions)
    ctx.metrics.track_subscribers("policies", lambda: servicer.open_streams)
    name = SERVICE.full_name
    loops: list[BackgroundLoop] = [hub.run]

    async def close_streams() -> None:
        hub.close()

    if not is_sqlite(ctx.settings.db_url):  # changes committed by other replicas wake the hub at their commit
        loops.append(NotifyListener(ctx.settings.db_url, ctx.settings.notify_channel, hub).run)
    return Component(
        name="policy",
        registrations=[lambda server: policy_service_pb2_grpc.add_PolicyServiceServicer_to_server(servicer, server)],
        service_names=[name],
        loops=loops,
        on_drain=[close_streams],  # open watches end at once: their nodes reconnect to another replica
        on_stop=[node_status.close],  # the last reports' batch, once no RPC can add to it
    )
