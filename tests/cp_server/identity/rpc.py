"""Small client helpers for the identity tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from xporty.cp.v1 import identity_service_pb2_grpc
from xwl_runtime.errors import RemoteError, decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.tls import TlsMaterial, secure_channel, server_only_channel


@asynccontextmanager
async def enroll_stub(target: str, ca_pem: bytes) -> AsyncIterator[identity_service_pb2_grpc.IdentityServiceStub]:
    async with server_only_channel(target, ca_pem) as channel:
        yield identity_service_pb2_grpc.IdentityServiceStub(channel)


@asynccontextmanager
async def mtls_stub(
    target: str, material: TlsMaterial
) -> AsyncIterator[identity_service_pb2_grpc.IdentityServiceStub]:
    async with secure_channel(target, material, expected=Identity.cp()) as channel:
        yield identity_service_pb2_grpc.IdentityServiceStub(channel)


async def refused(call: object) -> RemoteError:
    """Await ``call`` and return the decoded error it must fail with."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return decode_rpc_error(err)
    raise AssertionError("the call succeeded but should have been refused")

