"""One trace spans the importer's Checkout and the exporter's PlaceOrder, across two node processes.

The receiver is a real OTLP collector endpoint: a gRPC server implementing ``TraceService/Export`` from
``opentelemetry-proto``; the processes are configured only by the standard ``OTEL_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.observability.world import buy_many, running_world

pytestmark = pytest.mark.timeout(240)

CHECKOUT = "/xporty.node.v1.StorefrontService/Checkout"
PLACE_ORDER = "/xporty.trader.v1.TraderService/PlaceOrder"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every exported span as (service.name, span name, kind, trace id, span id, parent id, attributes)."""

    def __init__(self) -> None:
        self.spans: list[dict[str, object]] = []

    async def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,  # noqa: N802
                     context: grpc.aio.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "service": service, "name": span.name, "kind": span.kind, "trace": span.trace_id.hex(),
                        "span": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                        "attrs": {a.key: a.value.string_value or a.value.int_value for a in span.attributes},
                    })
        return trace_service_pb2.ExportTraceServiceResponse()


def _joined(spans: list[dict[str, object]]) -> tuple[dict[str, object], dict[str, object]] | None:
    checkouts = [s for s in spans if s["name"] == CHECKOUT and s["service"] == "xcwl-node-wl-b"]
    orders = [s for s in spans if s["name"] == PLACE_ORDER and s["service"] == "xcwl-node-wl-a"
              and s["kind"] == 2]  # SPAN_KIND_SERVER
    for checkout in checkouts:
        for order in orders:
            if order["trace"] == checkout["trace"]:
                return checkout, order
    return None


async def test_one_trace_from_importer_checkout_to_exporter_place_order(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    # Inherited by every xcwl process the world spawns; this test process itself does not trace.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    try:
        async with running_world(tmp_path) as (world, _):
            decided = await buy_many(world, "wl-b", "wl-a:a-3", 2, "trace")
            assert len(decided) == 2
            deadline = time.monotonic() + 30
            while (joined := _joined(receiver.spans)) is None:
                assert time.monotonic() < deadline, sorted({(s["service"], s["name"]) for s in receiver.spans})
                await asyncio.sleep(0.2)
    finally:
        await server.stop(0)
    checkout, order = joined
    trace_spans = [s for s in receiver.spans if s["trace"] == checkout["trace"]]
    by_id = {s["span"]: s for s in trace_spans}
    # The exporter's server span descends from the importer's Checkout through the importer's client span.
    client = by_id[order["parent"]]
    assert client["service"] == "xcwl-node-wl-b" and client["name"] == PLACE_ORDER and client["kind"] == 3
    cid = checkout["attrs"].get("xcwl.correlation_id")
    assert cid and order["attrs"].get("xcwl.correlation_id") == cid  # the same chain, both sides
    # DB transactions are child spans inside the trace, on both nodes.
    db = [s for s in trace_spans if s["name"] == "db.transaction"]
    assert {s["service"] for s in db} == {"xcwl-node-wl-a", "xcwl-node-wl-b"}
    assert all(s["parent"] in by_id for s in db)
