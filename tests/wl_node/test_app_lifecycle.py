"""Node lifecycle: graceful drain on stop and on SIGTERM (run_node in a real subprocess)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.pki import PkiFixture
from tests.wl_node.conftest import OPS, SERVING, WL, eventually, health_status, node_settings
from tests.wl_node.fake_cp import FakeCp, make_view
from wl_node.app import build_node
from xwl_runtime.authz import AuthzTableError, Rule
from xwl_runtime.component import Component
from xwl_runtime.identity import Identity, Kind
from xwl_runtime.tls import secure_channel

SLOW_METHOD = "/test.Slow/Sleep"


def _slow_component(entered: asyncio.Event, delay_s: float) -> Component:
    async def sleep(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        entered.set()
        await asyncio.sleep(delay_s)
        return b"done:" + request

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Slow", {"Sleep": grpc.unary_unary_rpc_method_handler(sleep)}),)
        )

    return Component(name="slow", registrations=[register])


async def test_stop_lets_in_flight_rpcs_finish_and_refuses_new_ones(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    entered = asyncio.Event()
    app = await build_node(
        node_settings(tmp_path, pki, fake_cp.target), extra_components=[_slow_component(entered, 0.5)],
        extra_authz={SLOW_METHOD: Rule(frozenset({Kind.OPS}))},
    )
    try:
        await eventually(lambda: app.health.serving)
        async with secure_channel(f"127.0.0.1:{app.port}", pki.material(OPS), expected=Identity.wl(WL)) as channel:
            call = channel.unary_unary(SLOW_METHOD)
            in_flight = asyncio.ensure_future(call(b"x", timeout=10))
            await entered.wait()
            loop = asyncio.get_running_loop()
            started = loop.time()
            await app.stop(grace=5)
            assert await in_flight == b"done:x"
            assert loop.time() - started >= 0.3  # stop waited for the call
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(b"y", timeout=2)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.stop(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigterm_announces_not_serving_and_exits_cleanly(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    port = _free_port()
    settings = node_settings(tmp_path, pki, fake_cp.target, listen=f"127.0.0.1:{port}")
    script = tmp_path / "run_node.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, datetime as dt
        from pathlib import Path
        from wl_node.app import run_node
        from wl_node.settings import NodeSettings
        asyncio.run(run_node(NodeSettings(
            wl_id={settings.wl_id!r}, pki_dir=Path({str(settings.pki_dir)!r}), cp_target={settings.cp_target!r},
            db_url={settings.db_url!r}, listen={settings.listen!r}, state_dir=Path({str(settings.state_dir)!r}),
        )))
    """))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), cwd=os.getcwd(), stderr=asyncio.subprocess.PIPE
    )
    try:
        async def serving() -> bool:
            try:
                return await health_status(pki, port) == SERVING
            except grpc.aio.AioRpcError:
                return False

        await eventually(serving, timeout=20)
        async with secure_channel(f"127.0.0.1:{port}", pki.material(OPS), expected=Identity.wl(WL)) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=20)
            assert (await watch.read()).status == SERVING
            proc.send_signal(signal.SIGTERM)
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, stderr.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_node_refuses_to_start_with_a_service_missing_from_its_table(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    # a service whose stubs the node loads (its policy agent's client) but does not serve: no row in its table
    stray = Component(name="stray", service_names=["xporty.cp.v1.PolicyService"])
    with pytest.raises(AuthzTableError, match="PolicyService/WatchPolicies"):
        await build_node(node_settings(tmp_path, pki, fake_cp.target), extra_components=[stray])
