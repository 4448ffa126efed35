"""Helpers of the rollout tests: RolloutService and FeatureFlagService stubs, the nodes' reported capabilities."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.support.pki import PkiFixture
from tests.wl_node.conftest import OPS, eventually
from tests.wl_node.test_cross_wl_trade import World
from xporty.cp.v1 import admin_service_pb2, rollout_service_pb2_grpc
from xporty.node.v1 import feature_flag_service_pb2_grpc
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

RPC = 20.0


@asynccontextmanager
async def rollout_stub(w: World) -> AsyncIterator[rollout_service_pb2_grpc.RolloutServiceStub]:
    async with secure_channel(f"127.0.0.1:{w.cp.port}", w.pki.material(OPS), expected=Identity.cp()) as channel:
        yield rollout_service_pb2_grpc.RolloutServiceStub(channel)


@asynccontextmanager
async def flag_stub(pki: PkiFixture, port: int, identity: Identity, node: str = ""
                    ) -> AsyncIterator[feature_flag_service_pb2_grpc.FeatureFlagServiceStub]:
    expected = Identity.wl(node or identity.wl_id)
    async with secure_channel(f"127.0.0.1:{port}", pki.material(identity), expected=expected) as channel:
        yield feature_flag_service_pb2_grpc.FeatureFlagServiceStub(channel)


async def capabilities_reported(w: World, *wl_ids: str) -> None:
    """Wait until the CP lists every node's software, contract version and capabilities."""
    async def reported() -> bool:
        resp = await w.admin("ListNodeStatus", admin_service_pb2.ListNodeStatusRequest())
        assert isinstance(resp, admin_service_pb2.ListNodeStatusResponse)
        found = {n.wl_id: n for n in resp.nodes}
        return all("rollout_caps" in found[wl].features and found[wl].contract_version for wl in wl_ids)

    await eventually(reported, timeout=20)
