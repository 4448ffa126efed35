"""How services reach the grpc.aio server: every method in one table, none as a gRPC "registered method".

grpc.aio's accept loop waits on one pending request per registered method for every incoming call, so the
server keeps a single dictionary instead (``xwl_runtime.server.MethodTable``); these tests check that a method
added only as a registered method, a generated servicer and health are all served through it, and that an unknown
method still gets UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.pki import PkiFixture
from xwl_runtime.authz import ALL_KINDS, Rule, table
from xwl_runtime.identity import Identity
from xwl_runtime.server import Listener, MethodTable, start_server
from xwl_runtime.tls import ReloadableServerCredentials, secure_channel

OPS = Identity.ops("alice")
ECHO = "/test.Echo/Say"


async def _say(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return b"echo:" + request


async def test_registered_methods_are_served_from_one_table(pki: PkiFixture) -> None:
    seen: list[grpc.aio.Server] = []

    def register(server: grpc.aio.Server) -> None:
        seen.append(server)
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {"Say": grpc.unary_unary_rpc_method_handler(_say)}
        server.add_registered_method_handlers("test.Echo", handlers)  # no generic handler for it at all

    creds = ReloadableServerCredentials(pki.material(Identity.cp()))
    running = await start_server(
        registrations=[register], service_names=[], listeners=[Listener("127.0.0.1:0", creds.credentials)],
        authz_table=table({ECHO: Rule(ALL_KINDS)}),
    )
    try:
        registrar = seen[0]
        assert registrar is not running.server  # registrations see the registrar, not the grpc server
        method_table = registrar.table
        assert isinstance(method_table, MethodTable)
        assert {ECHO, "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"} <= set(method_table.handlers)
        async with secure_channel(f"127.0.0.1:{running.port}", pki.material(OPS), expected=Identity.cp()) as channel:
            say = channel.unary_unary(ECHO, request_serializer=None, response_deserializer=None)
            assert await say(b"hi", timeout=5) == b"echo:hi"
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            unknown = channel.unary_unary("/test.Echo/Missing", request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await unknown(b"", timeout=5)
            assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        await running.stop(0)


async def test_registrations_cannot_open_ports(pki: PkiFixture) -> None:
    def register(server: grpc.aio.Server) -> None:
        server.add_insecure_port("127.0.0.1:0")

    creds = ReloadableServerCredentials(pki.material(Identity.cp()))
    with pytest.raises(TypeError, match="not ports"):
        await start_server(registrations=[register], service_names=[],
                           listeners=[Listener("127.0.0.1:0", creds.credentials)], authz_table=table({}))
