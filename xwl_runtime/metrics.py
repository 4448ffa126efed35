"""Prometheus metrics shared by both servers: one registry per process, RPC latency interceptors, the scrape listener.

Each process (and each app in a test process) owns a ``CollectorRegistry`` rather than prometheus-client's global
one, so two nodes in one interpreter never mix their figures. Names follow Prometheus conventions (base units,
``_total`` for counters) and every label set is bounded: service, method, gRPC code, peer WL, outcome — never an
order, checkout or correlation id. ``docs/metrics.md`` lists them all.

The server side is timed by the ``ServerPipeline`` with ``RpcMetrics.server_seconds`` (a refusal by the pipeline:
authorization, rate limit, validation, is measured with its code); the client interceptor times unary calls to
completion.

Figures kept in a database table (queue depths, balances, open alerts) are read when Prometheus scrapes
(``StoreGauges``), never by a loop of their own: an idle process runs no query unless someone scrapes it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

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
    """Awaits the call it started (a unary call's outcome is cached: the caller's own await returns it at once) and
    observes its latency by status code: no callback, no task per call."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._children: dict[tuple[str, str, str], Histogram] = {}

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryUnaryCall[Any, Any]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        started = time.perf_counter()
        call = await continuation(client_call_details, request)
        try:
            await call
        except grpc.aio.AioRpcError:
            pass  # the caller's own await raises it; here only its code counts
        elapsed = time.perf_counter() - started
        labels = (*split_method(name), _client_code(await call.code()))
        child = self._children.get(labels)
        if child is None:  # ``labels()`` takes a lock and builds a key on every call: once per label set
            child = self._children[labels] = self._histogram.labels(*labels)
        child.observe(elapsed)
        return call


def _client_code(code: Any) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


Samples = Mapping[str, Sequence[tuple[Sequence[str], float]]]
"""Gauge family name → its samples as (label values, value)."""

SCRAPE_READ_TIMEOUT_S = 5.0
"""Longest a scrape waits for a store read; past it the families are left out of that scrape."""


@dataclass(frozen=True)
class GaugeSpec:
    """One gauge family a ``StoreGauges`` collector reports."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()


class StoreGauges:
    """Gauges read from the store at scrape time, by an async read run on the owner's event loop.

    The scrape runs on the metrics listener's thread: it schedules ``read`` on ``loop`` and waits up to
    ``timeout_s``. A read that fails or times out leaves its families out of that scrape (logged), so a slow store
    never hangs Prometheus. Collected on the event loop's own thread (a test calling ``get_sample_value`` there),
    the families are empty rather than deadlocking: scrape through ``generate_latest`` on another thread.
    """

    def __init__(self, specs: Sequence[GaugeSpec], read: Callable[[], Awaitable[Samples]],
                 loop: asyncio.AbstractEventLoop, *, timeout_s: float = SCRAPE_READ_TIMEOUT_S) -> None:
        self._specs = tuple(specs)
        self._read = read
        self._loop = loop
        self._timeout_s = timeout_s

    def _families(self) -> dict[str, GaugeMetricFamily]:
        return {s.name: GaugeMetricFamily(s.name, s.documentation, labels=list(s.labels)) for s in self._specs}

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families().values())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = self._families()
        if self._loop.is_closed() or _on_loop(self._loop):
            return iter(())
        future = asyncio.run_coroutine_threadsafe(_call(self._read), self._loop)
        try:
            samples = future.result(timeout=self._timeout_s)
        except Exception as err:  # noqa: BLE001 - any failure of the read only drops these families
            future.cancel()
            log.warning("metrics store read failed", extra={"fields": {
                "families": sorted(families), "error": f"{type(err).__name__}: {str(err)[:160]}"}})
            return iter(())
        for name, rows in samples.items():
            family = families[name]
            for labels, value in rows:
                family.add_metric(list(labels), value)
        return iter(families.values())

    def register(self, registry: CollectorRegistry) -> StoreGauges:
        registry.register(self)
        return self


async def _call(read: Callable[[], Awaitable[Samples]]) -> Samples:
    return await read()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


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
