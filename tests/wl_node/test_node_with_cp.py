"""A real node against the real CP (cp_server.app.build_cp): follow changes, survive the CP going away."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cp_server.app import CpApp, build_cp
from cp_server.settings import CpSettings
from tests.support.pki import PkiFixture
from tests.support.trust import import_wls
from tests.wl_node.conftest import NOT_SERVING, OPS, SERVING, WL, eventually, health_status, node_settings
from wl_node.app import build_node
from xporty.cp.v1 import admin_service_pb2, admin_service_pb2_grpc, policy_pb2, registry_pb2
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

RPC_TIMEOUT = 10.0


async def _start_cp(pki: PkiFixture, db_url: str, port: int = 0) -> CpApp:
    app = await build_cp(CpSettings(db_url=db_url, pki_dir=pki.dir.root, listen=f"127.0.0.1:{port}",
                                    enroll_listen="127.0.0.1:0", heartbeat_interval=dt.timedelta(seconds=1)))
    await import_wls(app, pki, WL)  # the node's offline-issued certificate, recorded as an operator would
    return app


async def _admin(pki: PkiFixture, cp: CpApp, request: object, method: str) -> object:
    async with secure_channel(f"127.0.0.1:{cp.port}", pki.material(OPS), expected=Identity.cp()) as channel:
        stub = admin_service_pb2_grpc.AdminServiceStub(channel)
        return await getattr(stub, method)(request, timeout=RPC_TIMEOUT)


async def _set_fx(pki: PkiFixture, cp: CpApp, fx: str) -> int:
    resp = await _admin(pki, cp, admin_service_pb2.UpdatePairPolicyRequest(
        wl_a="wl-a", wl_b="wl-b", status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, imbalance_limit="1000", fx_rate=fx,
        force_fx=True, reason="test",
    ), "UpdatePairPolicy")
    return resp.version  # type: ignore[attr-defined]


async def _seed(pki: PkiFixture, cp: CpApp) -> int:
    for wl_id in ("wl-a", "wl-b"):
        await _admin(pki, cp, admin_service_pb2.RegisterWlRequest(white_label=registry_pb2.WhiteLabel(
            wl_id=wl_id, name=f"Market {wl_id}", currency=f"XPY-{wl_id[-1].upper()}", currency_decimals=2,
            reference_rate="1", trader_endpoint="127.0.0.1:9",
        )), "RegisterWl")
    return await _set_fx(pki, cp, "2")


async def test_node_follows_the_cp_reports_and_survives_its_absence(
    tmp_path: Path, pki: PkiFixture, db_url: str
) -> None:
    cp = await _start_cp(pki, db_url)
    cp_port = cp.port
    settings = node_settings(tmp_path, pki, f"127.0.0.1:{cp_port}")
    node = None
    try:
        version = await _seed(pki, cp)
        node = await build_node(settings)
        await eventually(lambda: node.state.version == version)
        assert node.state.pair("wl-b").fx_rate == "2"
        assert node.state.white_label("wl-b").currency == "XPY-B"
        await eventually(lambda: node.health.serving)  # published after the view's listeners ran
        assert await health_status(pki, node.port) == SERVING

        # The CP sees the applied version: no drift.
        async def reported() -> bool:
            status = await _admin(pki, cp, admin_service_pb2.ListNodeStatusRequest(), "ListNodeStatus")
            mine = [n for n in status.nodes if n.wl_id == WL]  # type: ignore[attr-defined]
            return bool(mine) and mine[0].applied_version == mine[0].current_version == version

        await eventually(reported)

        # A change made by an operator reaches the node over the stream.
        version = await _set_fx(pki, cp, "2.1")
        await eventually(lambda: node.state.version == version)
        assert node.state.pair("wl-b").fx_rate == "2.1"

        # CP gone: the node keeps serving its view.
        await cp.stop(0)
        await eventually(lambda: not node.state.stream_connected)
        assert node.state.version == version
        assert await health_status(pki, node.port) == SERVING

        # CP back on the same address with the same store: the node reconnects and follows the next change.
        cp = await _start_cp(pki, db_url, cp_port)
        await eventually(lambda: node.state.stream_connected)
        version = await _set_fx(pki, cp, "2.2")
        await eventually(lambda: node.state.version == version)
        await node.stop(0)

        # Node restarted while the CP is down: it serves the persisted view at once.
        await cp.stop(0)
        node = await build_node(settings)
        assert node.state.version == version and node.state.pair("wl-b").fx_rate == "2.2"
        assert await health_status(pki, node.port) == SERVING
    finally:
        if node is not None:
            await node.stop(0)
        await cp.stop(0)


async def test_a_node_whose_wl_is_not_registered_stays_not_serving(
    tmp_path: Path, pki: PkiFixture, sqlite_db_url: str
) -> None:
    cp = await _start_cp(pki, sqlite_db_url)
    try:
        node = await build_node(node_settings(tmp_path, pki, f"127.0.0.1:{cp.port}"))
        try:
            await node.agent.pull_once()
            assert node.state.current() is None
            assert await health_status(pki, node.port) == NOT_SERVING
            await _seed(pki, cp)  # registering it makes the view appear
            await eventually(lambda: node.state.current() is not None, timeout=10)
            await eventually(lambda: node.health.serving)
        finally:
            await node.stop(0)
    finally:
        await cp.stop(0)
