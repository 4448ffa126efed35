"""What ``xcwl bench checkout`` turns on for its observability run: tracing exported, metrics served and scraped.

* ``SpanSink``: an OTLP/gRPC TraceService in the bench process that accepts and counts spans (the exporter's real
  network path, without a collector);
* ``enable_tracing``: in a child server process, the standard ``OTEL_*`` variables pointing at the sink (and the
  sampler the bench states: ``OTEL_TRACES_SAMPLER``), then
  ``xwl_runtime.tracing.configure_tracing`` as ``xcwl … serve`` does it;
* ``Scraper``: GETs every child's ``/metrics`` once a second while the observed pair is measured, as a Prometheus
  server would.
"""

from __future__ import annotations

import asyncio
import os
import urllib.request
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from xwl_runtime import tracing

SCRAPE_INTERVAL_S = 1.0


class SpanSink(trace_service_pb2_grpc.TraceServiceServicer):
    """Counts exported spans."""

    def __init__(self) -> None:
        self.spans = 0
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def Export(  # noqa: N802 - gRPC method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    async def start(self) -> None:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)


def enable_tracing(otlp_port: int, service_name: str, sample_ratio: float = 1.0) -> None:
    """In a child process (its own edge): export spans to the sink through the standard variables, with the
    standard sampler settings: ``parentbased_always_on`` at ratio 1, else ``parentbased_traceidratio``."""
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{otlp_port}"
    os.environ["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
    if sample_ratio >= 1.0:
        os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_always_on"
    else:
        os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        os.environ["OTEL_TRACES_SAMPLER_ARG"] = str(sample_ratio)
    tracing.configure_tracing(os.environ, default_service_name=service_name)


class Scraper:
    """Scrapes ``http://127.0.0.1:<port>/metrics`` of each port once per ``SCRAPE_INTERVAL_S`` while resumed
    (the observed pair is scraped while it is measured, as Prometheus would, not while the other variants run)."""

    def __init__(self, ports: list[int]) -> None:
        self._ports = ports
        self._stop = asyncio.Event()
        self._active = False
        self._task: asyncio.Task[None] | None = None
        self.scrapes = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def resume(self) -> None:
        self._active = True

    def pause(self) -> None:
        self._active = False

    async def _run(self) -> None:
        while not self._stop.is_set():
            if self._active:
                for port in self._ports:
                    await asyncio.to_thread(self._get, port)
                    self.scrapes += 1
            try:
                await asyncio.wait_for(self._stop.wait(), SCRAPE_INTERVAL_S)
            except TimeoutError:
                pass

    @staticmethod
    def _get(port: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310
            resp.read()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
