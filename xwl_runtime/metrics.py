"""Prometheus metrics shared by both servers: one registry per process, RPC latency interceptors, the scrape listener.

Each process (and each app in a test process) owns a ``CollectorRegistry`` rather than prometheus-client's global
one, so two nodes in one interpreter never mix their figures. Names follow Prometheus conventions (base units,
``_total`` for counters) and every label set is bounded: service, method, gRPC code, peer WL, outcome — never an
order, checkout or correlation id. ``docs/metrics.md`` lists them all.

The server side is timed by the ``ServerPipeline`` with ``RpcMetrics.server_seconds`` (a refusal by the pipeline:
authorization, rate limit, validation, is measured with its code); the client interceptor times unary calls to
completion.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Histogram, start_http_server

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram buckets in seconds, dense around the 500 ms confirmation target."""


def split_method(full_method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` → (``pkg.Service``, ``Method``); anything else → (``unknown``, ``unknown``)."""
    _, _, rest = full_method.partition("/")
    service, sep, method = rest.partition("/")
    if not sep or not service or not method:
        return "unknown", "unknown"
    return service, method


class RpcMetrics:
    """RPC latency histograms by service, method and status code, server and client side."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.server_seconds = Histogram(
            "xcwl_rpc_server_duration_seconds", "Time to handle one RPC (streams: until the stream ends).",
            ["service", "method", "code"], registry=registry, buckets=LATENCY_BUCKETS_S,
        )
        self.client_seconds = Histogram(
            "xcwl_rpc_client_duration_seconds", "Time of one outbound unary RPC until its status is known.",
            ["service", "method", "code"], registry=registry, buckets=LATENCY_BUCKETS_S,
        )

    def client_interceptor(self) -> grpc.aio.UnaryUnaryClientInterceptor:
        return _ClientLatency(self.client_seconds)


class _ClientLatency(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryUnaryCall[Any, Any]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        service, rpc = split_method(name)
        started = time.perf_counter()
        call = await continuation(client_call_details, request)

        elapsed: list[float] = []

        async def record() -> None:
            code = await call.code()  # the call is done: returns at once
            self._histogram.labels(service, rpc, _client_code(code)).observe(elapsed[0])

        def done(_call: Any) -> None:
            elapsed.append(time.perf_counter() - started)
            task = asyncio.get_running_loop().create_task(record())
            _pending.add(task)
            task.add_done_callback(_pending.discard)

        call.add_done_callback(done)
        return call


_pending: set[asyncio.Task[None]] = set()
"""Recording tasks in flight (held so they are not garbage-collected before they run)."""


def _client_code(code: Any) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


@dataclass
class MetricsListener:
    """A running scrape endpoint (``GET /metrics``) on its own thread."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5.0)


def serve_metrics(address: str, registry: CollectorRegistry) -> MetricsListener:
    """Serve ``registry`` in Prometheus text format on ``HOST:PORT`` (port 0: any free port)."""
    host, _, port = address.rpartition(":")
    server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    listener = MetricsListener(server, thread)
    log.info("metrics listener", extra={"fields": {"address": f"{host}:{listener.port}"}})
    return listener
