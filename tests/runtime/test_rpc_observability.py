"""The server pipeline returns the correlation id to every caller and the RPC histograms count every outcome."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from xwl_runtime import correlation
from xwl_runtime.authz import table
from xwl_runtime.identity import Identity
from xwl_runtime.logs import configure_logging, log_serving
from xwl_runtime.metrics import RpcMetrics, serve_metrics
from xwl_runtime.pipeline import DEV_IDENTITY_METADATA_KEY
from xwl_runtime.server import Listener, RunningServer, start_server

CHECK = "/grpc.health.v1.Health/Check"
OPS = ((DEV_IDENTITY_METADATA_KEY, Identity.ops("alice").spiffe_id),)


@pytest.fixture
async def served() -> AsyncIterator[tuple[RunningServer, RpcMetrics, CollectorRegistry]]:
    registry = CollectorRegistry()
    metrics = RpcMetrics(registry)
    server = await start_server(registrations=[], service_names=[], listeners=[Listener("127.0.0.1:0", None)],
                                authz_table=table({}), insecure_dev=True, metrics=metrics)
    try:
        yield server, metrics, registry
    finally:
        await server.stop(0)


def _count(registry: CollectorRegistry, code: str) -> float:
    value = registry.get_sample_value("xcwl_rpc_server_duration_seconds_count",
                                      {"service": "grpc.health.v1.Health", "method": "Check", "code": code})
    return value or 0.0


async def test_caller_gets_its_correlation_id_back_and_the_call_is_measured(served: tuple) -> None:
    server, _, registry = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), metadata=(*OPS, (correlation.METADATA_KEY, "cid-from-caller")), timeout=5)
        assert (await call).status == health_pb2.HealthCheckResponse.SERVING
        assert dict(await call.initial_metadata())[correlation.METADATA_KEY] == "cid-from-caller"
    assert _count(registry, "OK") == 1


async def test_refused_caller_gets_a_fresh_correlation_id_and_the_code_is_measured(served: tuple) -> None:
    server, _, registry = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        # No identity: the pipeline refuses before any servicer runs; a malformed id is replaced, never echoed.
        call = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), metadata=((correlation.METADATA_KEY, "bad id!"),), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
        returned = dict(await call.initial_metadata())[correlation.METADATA_KEY]
        assert returned != "bad id!" and len(returned) == 32
    assert _count(registry, "UNAUTHENTICATED") == 1
    assert _count(registry, "OK") == 0


async def test_client_interceptor_measures_each_call_by_code_and_hands_the_caller_its_outcome(served: tuple) -> None:
    server, metrics, registry = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}",
                                         interceptors=[metrics.client_interceptor()]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        ok = await stub.Check(health_pb2.HealthCheckRequest(), metadata=OPS, timeout=5)
        assert ok.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # no identity
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED

    def client(code: str, suffix: str = "count") -> float:
        return registry.get_sample_value(f"xcwl_rpc_client_duration_seconds_{suffix}", {
            "service": "grpc.health.v1.Health", "method": "Check", "code": code}) or 0.0

    assert (client("OK"), client("UNAUTHENTICATED")) == (1.0, 1.0)
    assert client("OK", "sum") > 0


async def test_scrape_endpoint_serves_prometheus_text(served: tuple) -> None:
    server, _, registry = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), metadata=OPS, timeout=5)
    listener = serve_metrics("127.0.0.1:0", registry)
    try:
        text = await asyncio.to_thread(_get, f"http://127.0.0.1:{listener.port}/metrics")
    finally:
        listener.close()
    assert ('xcwl_rpc_server_duration_seconds_count{code="OK",method="Check",service="grpc.health.v1.Health"} 1.0'
            in text)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback test server
        return str(resp.read().decode())


def test_serving_line_shows_at_the_default_level_without_the_password() -> None:
    stream = io.StringIO()
    root, serving = logging.getLogger(), logging.getLogger("xcwl.serving")
    saved = (list(root.handlers), root.level, serving.level)
    configure_logging("WARNING", stream=stream)
    try:
        logging.getLogger("some.module").info("not shown at WARNING")
        log_serving("control plane", listeners={"mtls": "127.0.0.1:7400"},
                    store_url="postgresql://xcwl:s3cret@db.internal/cp")
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        serving.setLevel(saved[2])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["level"] == "INFO" and line["msg"] == "control plane serving"
    assert line["listeners"] == {"mtls": "127.0.0.1:7400"} and line["version"]
    assert "s3cret" not in line["store"] and "db.internal/cp" in line["store"]
    assert "trace_id" in line
