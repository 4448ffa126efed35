"""Tracing through the production interceptors under head sampling: a sampled trace records its spans, one trace id
from caller to callee; a trace the caller left out records nothing, yet its ``traceparent`` (same trace id, sampled
flag off) still reaches the next hop, and the DB child span is skipped.

The SDK's tracer provider is process-wide, so the scenario runs in a child interpreter with an in-memory exporter.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

SCENARIO = r"""
import asyncio, json
import grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from xwl_runtime import tracing
from xwl_runtime.authz import Rule, table
from xwl_runtime.identity import Kind
from xwl_runtime.pipeline import DEV_IDENTITY_METADATA_KEY
from xwl_runtime.identity import Identity
from xwl_runtime.server import Listener, start_server
from xwl_runtime.tls import secure_channel

spans = InMemorySpanExporter()
provider = TracerProvider()  # the default sampler: parentbased_always_on, so the caller's flag decides
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
ME = ((DEV_IDENTITY_METADATA_KEY, Identity.wl("wl-a").spiffe_id),)
RULES = table({"/t.Front/Call": Rule(frozenset({Kind.WL})), "/t.Back/Call": Rule(frozenset({Kind.WL}))})
seen = []

async def back(request, context):
    seen.append(dict(context.invocation_metadata()).get("traceparent", ""))
    return b""

async def main():
    back_server = await start_server(
        registrations=[lambda s: s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "t.Back", {"Call": grpc.unary_unary_rpc_method_handler(back)}),))],
        service_names=[], listeners=[Listener("127.0.0.1:0", None)], authz_table=RULES, insecure_dev=True)
    downstream = secure_channel(f"127.0.0.1:{back_server.port}", None, expected=Identity.wl("wl-b"))

    async def front(request, context):
        with tracing.span("db.transaction"):
            pass
        await downstream.unary_unary("/t.Back/Call")(b"", metadata=ME, timeout=5)
        return tracing.current_trace_id().encode()

    front_server = await start_server(
        registrations=[lambda s: s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "t.Front", {"Call": grpc.unary_unary_rpc_method_handler(front)}),))],
        service_names=[], listeners=[Listener("127.0.0.1:0", None)], authz_table=RULES, insecure_dev=True)
    out = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{front_server.port}") as channel:
        call = channel.unary_unary("/t.Front/Call")
        for name, flags in (("sampled", "01"), ("unsampled", "00")):
            trace_id = ("ab" if flags == "01" else "cd") * 16
            spans.clear()
            seen.clear()
            logged = await call(b"", metadata=(*ME, ("traceparent", f"00-{trace_id}-{'12' * 8}-{flags}")), timeout=5)
            finished = sorted((s.name, format(s.context.trace_id, "032x")) for s in spans.get_finished_spans())
            out[name] = {"trace_id": trace_id, "logged": logged.decode(), "downstream": seen[0], "spans": finished}
    await downstream.close()
    await front_server.stop(0)
    await back_server.stop(0)
    print(json.dumps(out))

asyncio.run(main())
"""


async def test_sampled_traces_record_every_hop_and_unsampled_ones_only_propagate_their_context() -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SCENARIO, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    out = json.loads(stdout.decode().strip().splitlines()[-1])

    sampled = out["sampled"]
    assert sampled["logged"] == sampled["trace_id"]
    assert sampled["downstream"].startswith(f"00-{sampled['trace_id']}-") and sampled["downstream"].endswith("-01")
    names = [name for name, trace_id in sampled["spans"] if trace_id == sampled["trace_id"]]
    assert sorted(names) == ["/t.Back/Call", "/t.Back/Call", "/t.Front/Call", "db.transaction"]  # client+server

    unsampled = out["unsampled"]
    assert unsampled["spans"] == []
    assert unsampled["logged"] == unsampled["trace_id"]  # the log lines still carry the caller's trace id
    assert unsampled["downstream"].startswith(f"00-{unsampled['trace_id']}-")
    assert unsampled["downstream"].endswith("-00")
