"""``xwl_runtime.lifecycle``: one shutdown order for every process built from components, on a real server.

Drain hooks run while the server still serves (so open streams end instead of holding the grace period), the loops
are told to stop while calls in flight finish, stop hooks run once the server and the loops have stopped, closers
last; a failing hook does not
keep the rest (and the store) open; a loop that ignores the stop event is cancelled; stopping twice is a no-op."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xwl_runtime.authz import table
from xwl_runtime.component import Component
from xwl_runtime.identity import Identity
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.pipeline import DEV_IDENTITY_METADATA_KEY
from xwl_runtime.server import Listener, RunningServer, start_server

OPS = ((DEV_IDENTITY_METADATA_KEY, Identity.ops("alice").spiffe_id),)


async def _server() -> RunningServer:
    return await start_server(registrations=[], service_names=[], listeners=[Listener("127.0.0.1:0", None)],
                              authz_table=table({}), insecure_dev=True)


async def _health(port: int) -> str:
    """The server's answer to a health check: SERVING / NOT_SERVING, or the status code of a refused call."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2,
                                                                    metadata=OPS)
        except grpc.aio.AioRpcError as err:
            return err.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_stop_runs_drain_then_server_and_loops_then_stop_hooks_and_closers() -> None:
    server = await _server()
    events: list[str] = []

    async def drain() -> None:
        events.append("drain:" + await _health(server.port))  # the server still answers while draining

    async def loop(stop: asyncio.Event) -> None:
        await stop.wait()
        events.append("loop")

    async def on_stop() -> None:
        events.append("stop:" + await _health(server.port))  # the server is gone when stop hooks run

    async def close() -> None:
        events.append("close")

    lifecycle = Lifecycle(server, [Component(name="a", loops=[loop], on_drain=[drain], on_stop=[on_stop])],
                          closers=[close])
    lifecycle.start_loops()
    assert lifecycle.running_loops == 1
    await lifecycle.stop(0)
    assert events == ["drain:SERVING", "loop", "stop:UNAVAILABLE", "close"]
    assert lifecycle.running_loops == 0
    await lifecycle.stop(0)  # a second stop does nothing
    assert events == ["drain:SERVING", "loop", "stop:UNAVAILABLE", "close"]


async def test_a_failing_hook_is_logged_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    closed: list[str] = []

    async def broken() -> None:
        raise RuntimeError("flush failed")

    async def close_store() -> None:
        closed.append("store")

    lifecycle = Lifecycle(await _server(), [Component(name="a", on_drain=[broken], on_stop=[broken])],
                          closers=[broken, close_store])
    with caplog.at_level(logging.ERROR, logger="xwl_runtime.lifecycle"):
        await lifecycle.stop(0)
    assert closed == ["store"]
    assert [r.__dict__["fields"]["stage"] for r in caplog.records] == ["drain", "stop", "close"]


async def test_a_loop_that_ignores_the_stop_event_is_cancelled_after_the_timeout() -> None:
    cancelled = asyncio.Event()

    async def stubborn(_stop: asyncio.Event) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    lifecycle = Lifecycle(await _server(), [Component(name="a", loops=[stubborn])], loop_timeout_s=0.1)
    lifecycle.start_loops()
    await asyncio.wait_for(lifecycle.stop(0), timeout=5)
    assert cancelled.is_set()


async def test_loops_stopped_alone_can_start_again_while_the_server_serves() -> None:
    server = await _server()
    rounds: list[int] = []

    async def loop(stop: asyncio.Event) -> None:
        rounds.append(len(rounds))
        await stop.wait()

    lifecycle = Lifecycle(server, [Component(name="a", loops=[loop])])
    try:
        lifecycle.start_loops()
        await lifecycle.stop_loops()
        assert await _health(server.port) == "SERVING"
        lifecycle.start_loops()
        await asyncio.sleep(0.05)
        assert lifecycle.running_loops == 1  # a fresh stop event: the restarted loop runs
        assert rounds == [0, 1]
    finally:
        await lifecycle.stop(0)
