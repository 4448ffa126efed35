"""Every transaction on an engine built by ``xwl_runtime.db`` while tracing is on is a ``db.transaction`` child span
of the span that ran it, ended after the COMMIT (or ROLLBACK) itself; a transaction outside any trace, or inside a
trace the sampler left out, makes no span. On SQLite and on PostgreSQL.

The SDK's tracer provider is process-wide, so the scenario runs in a child interpreter with an in-memory exporter.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

SCENARIO = r"""
import asyncio, json, sys
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from xwl_runtime import db, tracing

spans = InMemorySpanExporter()
provider = tracing.new_provider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
tracer = provider.get_tracer("test")
rows = sa.table("t", sa.column("x"))

async def main():
    engine = db.create_engine(sys.argv[1], pool_size=2)
    async with engine.begin() as conn:  # outside any trace: no span
        await conn.execute(sa.text("CREATE TABLE t (x INTEGER NOT NULL)"))
    with tracer.start_as_current_span("rpc") as rpc:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(rows).values(x=1))
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.insert(rows).values(x=2))
                raise LookupError("refused")
        except LookupError:
            pass
    unsampled = SpanContext(trace_id=0xcd, span_id=0x12, is_remote=True, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(unsampled)):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(rows).values(x=3))
    async with engine.connect() as conn:
        kept = sorted((await conn.execute(sa.select(rows.c.x))).scalars())
    await engine.dispose()
    finished = spans.get_finished_spans()
    out = {"kept": kept, "rpc": [format(rpc.get_span_context().span_id, "016x"),
                                 format(rpc.get_span_context().trace_id, "032x")],
           "spans": [{"name": s.name, "parent": format(s.parent.span_id, "016x") if s.parent else None,
                      "trace": format(s.context.trace_id, "032x"), "attributes": dict(s.attributes),
                      "start": s.start_time, "end": s.end_time} for s in finished]}
    print(json.dumps(out))

asyncio.run(main())
"""


async def test_transactions_are_child_spans_of_the_sampled_request_only(db_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SCENARIO, db_url,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    assert out["kept"] == [1, 3]
    rpc_span, rpc_trace = out["rpc"]
    tx = [s for s in out["spans"] if s["name"] == "db.transaction"]
    system = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    assert [(s["parent"], s["trace"], s["attributes"]) for s in tx] == [
        (rpc_span, rpc_trace, {"db.system": system, "db.outcome": "commit"}),
        (rpc_span, rpc_trace, {"db.system": system, "db.outcome": "rollback"}),
    ]
    assert all(s["end"] > s["start"] for s in tx)
    assert [s["name"] for s in out["spans"]] == ["db.transaction", "db.transaction", "rpc"]
