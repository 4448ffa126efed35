"""Retries: only retryable codes, explicit per-attempt deadlines taken from the remaining time, a budget."""

from __future__ import annotations

import random

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xwl_runtime.retry import Deadline, RetryBudget, RetryPolicy, call_with_retries


class _UpperBoundRng(random.Random):
    """Full jitter at its upper bound, so the backoff is deterministic."""

    def uniform(self, a: float, b: float) -> float:
        return b


class FlakyHealth(health_pb2_grpc.HealthServicer):
    """Fails the first ``failures`` calls with ``code`` and records the deadline each call arrived with."""

    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.failures = failures
        self.code = code
        self.remaining: list[float] = []

    async def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> health_pb2.HealthCheckResponse:  # noqa: N802,E501
        self.remaining.append(context.time_remaining())
        if len(self.remaining) <= self.failures:
            await context.abort(self.code, "injected")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def _serve(servicer: FlakyHealth) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_retries_unavailable_with_shrinking_explicit_deadlines() -> None:
    servicer = FlakyHealth(2, grpc.StatusCode.UNAVAILABLE)
    server, port = await _serve(servicer)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            resp = await call_with_retries(
                lambda t: stub.Check(health_pb2.HealthCheckRequest(), timeout=t),
                deadline=Deadline.after(1.0),
                policy=RetryPolicy(max_attempts=3, base_backoff_s=0.05, max_backoff_s=0.1),
                rng=_UpperBoundRng(),
            )
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        assert len(servicer.remaining) == 3
        assert all(r <= 1.0 for r in servicer.remaining)
        # Each attempt carries what is left of the one overall deadline: 0.05 s + 0.1 s of backoff were spent.
        assert servicer.remaining[0] - servicer.remaining[2] >= 0.14
    finally:
        await server.stop(0)


async def test_non_retryable_code_is_not_retried() -> None:
    servicer = FlakyHealth(1, grpc.StatusCode.FAILED_PRECONDITION)
    server, port = await _serve(servicer)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call_with_retries(
                    lambda t: stub.Check(health_pb2.HealthCheckRequest(), timeout=t),
                    deadline=Deadline.after(1.0),
                    policy=RetryPolicy(max_attempts=3),
                )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert len(servicer.remaining) == 1
    finally:
        await server.stop(0)


async def test_empty_budget_stops_retries() -> None:
    servicer = FlakyHealth(5, grpc.StatusCode.UNAVAILABLE)
    server, port = await _serve(servicer)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                await call_with_retries(
                    lambda t: stub.Check(health_pb2.HealthCheckRequest(), timeout=t),
                    deadline=Deadline.after(1.0),
                    policy=RetryPolicy(max_attempts=5),
                    budget=RetryBudget(tokens=0.0),
                )
        assert len(servicer.remaining) == 1
    finally:
        await server.stop(0)
