"""A real CP (``build_cp``) and real WL nodes (``build_node``) for the node-side risk and telemetry tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cp_server.app import CpApp, build_cp
from cp_server.settings import CpSettings
from tests.support.pki import PkiFixture
from tests.support.trust import import_wls
from tests.wl_node.catalog.helpers import DbFactory
from tests.wl_node.conftest import OPS, eventually, node_settings
from wl_node.app import NodeApp, build_node
from wl_node.risk.component import RiskComponent
from wl_node.telemetry.component import TelemetryComponent
from xporty.cp.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    analytics_service_pb2,
    analytics_service_pb2_grpc,
    policy_pb2,
    registry_pb2,
    signal_pb2,
    signal_service_pb2,
    signal_service_pb2_grpc,
)
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

RPC = 10.0


@dataclass
class World:
    tmp_path: Path
    pki: PkiFixture
    dbs: DbFactory
    cp: CpApp
    cp_db: str
    cp_port: int
    nodes: dict[str, NodeApp] = field(default_factory=dict)

    async def _call(self, stub_cls: Any, method: str, request: object) -> Any:
        async with secure_channel(f"127.0.0.1:{self.cp_port}", self.pki.material(OPS),
                                  expected=Identity.cp()) as channel:
            return await getattr(stub_cls(channel), method)(request, timeout=RPC)

    async def admin(self, method: str, request: object) -> Any:
        return await self._call(admin_service_pb2_grpc.AdminServiceStub, method, request)

    async def send_signal(self, kind: int, exporter: str, importer: str) -> signal_pb2.Signal:
        resp = await self._call(signal_service_pb2_grpc.SignalServiceStub, "SendSignal",
                                signal_service_pb2.SendSignalRequest(kind=kind, exporter_wl=exporter,
                                                                     importer_wl=importer, reason="test"))
        return resp.signal  # type: ignore[no-any-return]

    async def balances(self) -> dict[tuple[str, str], Any]:
        resp = await self._call(analytics_service_pb2_grpc.AnalyticsServiceStub, "GetBalances",
                                analytics_service_pb2.GetBalancesRequest())
        return {(b.wl_a, b.wl_b): b for b in resp.balances}

    async def start_cp(self) -> None:
        self.cp = await _cp(self.pki, self.cp_db, self.cp_port)

    async def start_node(self, wl_id: str) -> NodeApp:
        self.pki.material(Identity.wl(wl_id))
        settings = replace(node_settings(self.tmp_path / wl_id, self.pki, f"127.0.0.1:{self.cp_port}"),
                           wl_id=wl_id, db_url=self._node_db(wl_id))
        node = await build_node(settings)
        self.nodes[wl_id] = node
        return node

    def _node_db(self, wl_id: str) -> str:
        if wl_id not in self._node_dbs:
            self._node_dbs[wl_id] = self.dbs(f"node-{wl_id}")
        return self._node_dbs[wl_id]

    _node_dbs: dict[str, str] = field(default_factory=dict)


def risk_of(node: NodeApp) -> RiskComponent:
    return node.features.risk


def telemetry_of(node: NodeApp) -> TelemetryComponent:
    return node.features.telemetry


async def _cp(pki: PkiFixture, db_url: str, port: int = 0) -> CpApp:
    return await build_cp(CpSettings(db_url=db_url, pki_dir=pki.dir.root, listen=f"127.0.0.1:{port}",
                                     enroll_listen="127.0.0.1:0", heartbeat_interval=dt.timedelta(seconds=0.5)))


@asynccontextmanager
async def world(tmp_path: Path, pki: PkiFixture, dbs: DbFactory, wls: list[str], *,
                limit: str = "1000000") -> AsyncIterator[World]:
    """A CP with ``wls`` registered (reference rate 1, decimals 2), every pair ACTIVE with ``limit``, both
    directions import-enabled and visible. Nodes are started by the test (``start_node``)."""
    cp_db = dbs("cp")
    cp = await _cp(pki, cp_db)
    w = World(tmp_path, pki, dbs, cp, cp_db, cp.port)
    try:
        await import_wls(cp, pki, *wls)  # offline-issued node certificates, recorded as an operator would
        for wl_id in wls:
            await w.admin("RegisterWl", admin_service_pb2.RegisterWlRequest(white_label=registry_pb2.WhiteLabel(
                wl_id=wl_id, name=wl_id, currency=f"XPY-{wl_id[-1].upper()}", currency_decimals=2,
                reference_rate="1", trader_endpoint="127.0.0.1:9")))
        for i, a in enumerate(wls):
            for b in wls[i + 1:]:
                await w.admin("UpdatePairPolicy", admin_service_pb2.UpdatePairPolicyRequest(
                    wl_a=a, wl_b=b, status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, imbalance_limit=limit,
                    fx_rate="1", force_fx=True, reason="test"))
                for exp, imp in ((a, b), (b, a)):
                    await w.admin("UpdateDirectionPolicy", admin_service_pb2.UpdateDirectionPolicyRequest(
                        exporter_wl=exp, importer_wl=imp, import_enabled=True, destination_visible=True,
                        reason="test"))
        yield w
    finally:
        for node in w.nodes.values():
            await node.stop(0)
        await w.cp.stop(0)


async def ready(node: NodeApp) -> None:
    """The node has a policy view and contact with the signal stream."""
    risk = risk_of(node)
    assert risk.enforcer is not None
    await eventually(lambda: node.state.current() is not None, timeout=20)
    await eventually(lambda: not risk.enforcer.stale(), timeout=20)  # type: ignore[union-attr]
