"""A real CP (``cp_server.app.build_cp``) for the core tests, and typed stubs over real mTLS.

Everything runs as in production: migrations, both listeners, the production pipeline, the real store on the
``db_url`` fixture's database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import sqlalchemy as sa

from cp_server.app import CpApp, build_cp
from cp_server.settings import CpSettings
from cp_server.store.schema import audit_log, cp_state
from tests.support.pki import PkiFixture
from tests.support.trust import import_identity
from xporty.cp.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    policy_service_pb2_grpc,
    registry_pb2,
)
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

OPS = Identity.ops("alice")
RPC_TIMEOUT = 10.0


def settings_for(pki: PkiFixture, db_url: str, **overrides: Any) -> CpSettings:
    values: dict[str, Any] = {
        "db_url": db_url, "pki_dir": pki.dir.root, "listen": "127.0.0.1:0", "enroll_listen": "127.0.0.1:0",
    }
    values.update(overrides)
    return CpSettings(**values)


def wl_proto(
    wl_id: str, *, rate: str = "1", decimals: int = 2, endpoint: str = "127.0.0.1:9"
) -> registry_pb2.WhiteLabel:
    return registry_pb2.WhiteLabel(
        wl_id=wl_id, name=f"Market {wl_id}", currency=f"XPY-{wl_id.upper()}", currency_decimals=decimals,
        reference_rate=rate, trader_endpoint=endpoint,
    )


@dataclass
class Cp:
    """A running CP with stubs for any identity."""

    app: CpApp
    pki: PkiFixture
    stack: AsyncExitStack
    _channels: dict[Identity, grpc.aio.Channel] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    async def channel(self, identity: Identity) -> grpc.aio.Channel:
        if identity not in self._channels:
            await import_identity(self.app, self.pki, identity)
            self._channels[identity] = await self.stack.enter_async_context(
                secure_channel(self.target, self.pki.material(identity), expected=Identity.cp())
            )
        return self._channels[identity]

    async def admin(self, identity: Identity = OPS) -> admin_service_pb2_grpc.AdminServiceStub:
        return admin_service_pb2_grpc.AdminServiceStub(await self.channel(identity))

    async def policy(self, identity: Identity) -> policy_service_pb2_grpc.PolicyServiceStub:
        return policy_service_pb2_grpc.PolicyServiceStub(await self.channel(identity))

    async def register(self, *wl_ids: str, rates: dict[str, str] | None = None) -> int:
        admin = await self.admin()
        version = 0
        for wl_id in wl_ids:
            resp = await admin.RegisterWl(
                admin_service_pb2.RegisterWlRequest(white_label=wl_proto(wl_id, rate=(rates or {}).get(wl_id, "1"))),
                timeout=RPC_TIMEOUT,
            )
            version = resp.version
        return version

    async def state(self) -> tuple[int, int]:
        """(policy version, number of audit records) straight from the store."""
        async with self.app.ctx.engine.connect() as conn:
            version = (await conn.execute(sa.select(cp_state.c.policy_version))).scalar_one()
            count = (await conn.execute(sa.select(sa.func.count()).select_from(audit_log))).scalar_one()
        return int(version), int(count)


@asynccontextmanager
async def running_cp(pki: PkiFixture, db_url: str, **overrides: Any) -> AsyncIterator[Cp]:
    app = await build_cp(settings_for(pki, db_url, **overrides))
    async with AsyncExitStack() as stack:
        try:
            yield Cp(app, pki, stack)
        finally:
            await stack.aclose()
            await app.stop(0)


async def rpc_error(call: Any) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """Await ``call`` expecting a failure; returns (code, ErrorInfo reason, ErrorInfo metadata)."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        decoded = decode_rpc_error(err)
        return decoded.code, decoded.reason, dict(decoded.metadata or {})
    raise AssertionError("the call succeeded")


def utc(seconds: float = 0) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
