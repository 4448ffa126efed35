"""The CP as an operator sees it: grpcurl over mTLS (list, health, a WatchPolicies stream that receives a change),
graceful drain, and the explicit plaintext development mode."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.cp_server.core_harness import OPS, RPC_TIMEOUT, running_cp, wl_proto
from tests.support import grpcurl
from tests.support.pki import PkiFixture
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import admin_service_pb2_grpc
from xporty.cp.v1 import policy_service_pb2 as ps
from xwl_runtime.identity import Identity
from xwl_runtime.pipeline import DEV_IDENTITY_METADATA_KEY


async def test_grpcurl_lists_checks_health_and_watches_a_change(pki: PkiFixture, sqlite_db_url: str) -> None:
    async with running_cp(pki, sqlite_db_url, heartbeat_interval=dt.timedelta(seconds=30)) as cp:
        await cp.register("wl-a", "wl-b")
        tls = grpcurl.tls_args(*pki.files(OPS))
        listed = await grpcurl.arun([*tls, cp.target, "list"])
        assert listed.returncode == 0, listed.stderr
        assert {"xporty.cp.v1.AdminService", "xporty.cp.v1.PolicyService", "xporty.cp.v1.IdentityService",
                "grpc.health.v1.Health"} <= set(listed.stdout.split())
        health = await grpcurl.arun([*tls, cp.target, "grpc.health.v1.Health/Check"])
        assert grpcurl.parse_stream(health.stdout) == [{"status": "SERVING"}]

        watch = asyncio.create_task(grpcurl.arun(
            [*tls, "-max-time", "4", "-d", '{"wl_id": "wl-a"}', cp.target, "xporty.cp.v1.PolicyService/WatchPolicies"],
            timeout=15))
        await asyncio.sleep(1.5)  # let grpcurl connect and receive the first snapshot
        changed = await (await cp.admin()).UpdatePairPolicy(
            pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="7"), timeout=RPC_TIMEOUT)
        result = await watch
        messages = grpcurl.parse_stream(result.stdout)
        versions = [int(m["snapshot"]["version"]) for m in messages if "snapshot" in m]
        assert versions[0] < changed.version and versions[-1] == changed.version, result.stderr
        assert messages[-1]["snapshot"]["pairs"][0]["imbalance_limit"] == "7"  # grpcurl keeps proto field names


async def test_stop_ends_policy_streams_so_nodes_can_reconnect(pki: PkiFixture, sqlite_db_url: str) -> None:
    async with running_cp(pki, sqlite_db_url) as cp:
        await cp.register("wl-a")
        stream = (await cp.policy(Identity.wl("wl-a"))).WatchPolicies(ps.WatchPoliciesRequest())
        assert (await asyncio.wait_for(stream.read(), timeout=5)).WhichOneof("event") == "snapshot"
        started = asyncio.get_running_loop().time()
        await cp.app.stop(5)
        assert await asyncio.wait_for(stream.read(), timeout=5) is grpc.aio.EOF
        assert await stream.code() == grpc.StatusCode.OK
        assert asyncio.get_running_loop().time() - started < 2  # drained at once, not after the grace period


async def test_insecure_dev_serves_plaintext_with_the_dev_identity_header(pki: PkiFixture, sqlite_db_url: str) -> None:
    async with running_cp(pki, sqlite_db_url, insecure_dev=True) as cp:
        async with grpc.aio.insecure_channel(cp.target) as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            resp = await admin.RegisterWl(pb.RegisterWlRequest(white_label=wl_proto("wl-a")), timeout=RPC_TIMEOUT,
                                          metadata=((DEV_IDENTITY_METADATA_KEY, OPS.spiffe_id),))
            assert resp.version == 1
            with_wl = (DEV_IDENTITY_METADATA_KEY, Identity.wl("wl-a").spiffe_id)
            try:
                await admin.ListWls(pb.ListWlsRequest(), timeout=RPC_TIMEOUT, metadata=(with_wl,))
                raise AssertionError("a WL identity called an admin RPC")
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.PERMISSION_DENIED
