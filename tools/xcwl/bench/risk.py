"""``xcwl bench risk``: reaction time of the risk guardrail and ingest throughput of signed events.

* Reaction (``risk.reaction.p50_ms.n50`` / ``p99_ms.n50``): 50 WL nodes (25 pairs) keep WatchSignals open over
  mTLS; pair after pair, round after round, an exporter publishes a signed EXPORT_CONFIRMED that takes its pair
  over the limit, the CP issues DISABLE, and the importer's stand-in enforcer acknowledges on receipt (AckSignal,
  effective time = now). Reaction = ack effective time − the CP's receipt of the crossing event (both stored at
  the CP). The exporter then cancels the order and the CP re-enables before the next crossing. A last round where
  all 25 pairs cross at the same instant gives ``risk.reaction.p50_ms.n50.burst`` / ``p99_ms.n50.burst``.
  The stand-in enforcer does no local work: the node's real enforcer (disabling offers, refusing checkouts)
  comes with the node half of the issue, and its own time adds to this figure.
* Ingest (``risk.ingest.events_per_s.{sqlite,postgres}``): signed events verified and stored per second at the
  CP. 4 nodes (2 pairs) publish 20,000 pre-signed EXPORT_CONFIRMED events (5,000 orders each; signing is the
  nodes' cost and happens before the clock starts) in PublishEvents batches of 500 (``--batch``; a node's outbox
  drains its backlog in batches of this order), each node one call at a time, the 4 concurrently, over mTLS.
  The CP verifies every signature, checks signer and caller, dedupes, stores events and orders and moves the
  balances, all committed before it answers. Events per second = accepted events / wall time from the first
  request sent to the last response received, measured by the publishers. The publishers run in their own
  process (``xcwl.bench._publishers``), so the CP's process holds only the CP (it still shares the machine's
  cores with them: they use ~5 µs of CPU per event). The CP's signature workers are started before the clock
  starts, like the connections.

The CP runs in this process with the production pipeline, a real store (SQLite in a temp dir; a fresh PostgreSQL
database created and dropped through ``--pg-admin-dsn``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import sqlalchemy as sa

from cp_server.audit.log import AuditLog
from cp_server.context import CpContext
from cp_server.risk import tables as rt
from cp_server.risk.component import RiskParts, build
from cp_server.settings import CpSettings
from cp_server.store.schema import pairs, white_labels
from xporty.cp.v1 import (
    signal_pb2,
    signal_service_pb2,
    signal_service_pb2_grpc,
    telemetry_pb2,
    telemetry_service_pb2,
    telemetry_service_pb2_grpc,
)
from xwl_runtime import db
from xwl_runtime.authz import table
from xwl_runtime.clock import SystemClock
from xwl_runtime.event_signing import certificate_sha256, sign
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir, load_key
from xwl_runtime.server import Listener, start_server
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial, secure_channel

MIGRATIONS = Path(__file__).resolve().parents[3] / "cp_server" / "store" / "migrations"
KIND = telemetry_pb2.LedgerEventKind
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``xcwl bench risk``."""
    parser.add_argument("--events", type=int, default=20_000, help="signed events to ingest per backend")
    parser.add_argument("--batch", type=int, default=500, help="events per PublishEvents call")
    parser.add_argument("--publishers", type=int, default=4, help="nodes publishing concurrently")
    parser.add_argument("--subscribers", type=int, default=50, help="nodes watching signals (even)")
    parser.add_argument("--rounds", type=int, default=4, help="limit crossings per pair")
    parser.add_argument("--pg-admin-dsn", default=os.environ.get("XCWL_BENCH_PG_DSN", DEFAULT_PG_ADMIN),
                        help="PostgreSQL server where a scratch database is created")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")


@dataclass
class _Cp:
    target: str
    ctx: CpContext
    parts: RiskParts


@asynccontextmanager
async def _running_cp(pki: PkiDir, db_url: str) -> AsyncIterator[_Cp]:
    await asyncio.to_thread(db.upgrade, db_url, MIGRATIONS, version_table="cp_alembic_version")
    engine = db.create_engine(db_url)
    clock = SystemClock()
    ca = pki.load_ca()
    material = TlsMaterial.from_pki(pki, Identity.cp())
    from cryptography.hazmat.primitives.asymmetric import ec

    ctx = CpContext(settings=CpSettings(db_url=db_url, pki_dir=pki.root), engine=engine, clock=clock, ca=ca,
                    tls=material, jwt_key=ec.generate_private_key(ec.SECP256R1()), audit=AuditLog(ca.key, clock))
    component, parts = build(ctx)
    server = await start_server(
        registrations=component.registrations, service_names=component.service_names,
        listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(material).credentials)],
        authz_table=table(component.authz),
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop(stop)) for loop in component.loops]
    try:
        yield _Cp(f"127.0.0.1:{server.port}", ctx, parts)
    finally:
        stop.set()
        for hook in component.on_stop:
            await hook()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop(0)
        await engine.dispose()


async def _seed(ctx: CpContext, wl_ids: list[str], limit: str) -> None:
    now = dt.datetime.now(dt.UTC)
    async with ctx.engine.begin() as conn:
        await conn.execute(white_labels.insert(), [
            {"wl_id": w, "name": w, "currency": f"C-{w}", "currency_decimals": 2, "reference_rate": "1",
             "trader_endpoint": "127.0.0.1:1", "created_at": now, "updated_at": now, "changed_version": 0}
            for w in wl_ids])
        await conn.execute(pairs.insert(), [
            {"wl_a": wl_ids[i], "wl_b": wl_ids[i + 1], "status": "ACTIVE", "imbalance_limit": limit,
             "fx_rate": "1", "fx_version": 1, "imports_frozen": False, "created_at": now, "updated_at": now,
             "changed_version": 0}
            for i in range(0, len(wl_ids) - 1, 2)])


class _Node:
    def __init__(self, pki: PkiDir, wl_id: str, target: str) -> None:
        ident = Identity.wl(wl_id)
        if not pki.has(ident):
            pki.issue(ident)
        self.wl_id = wl_id
        self.material = TlsMaterial.from_pki(pki, ident)
        self.key = load_key(self.material.pair.key_pem)
        self.fp = certificate_sha256(self.material.pair.cert_pem)
        self.channel = secure_channel(target, self.material)
        self.telemetry = telemetry_service_pb2_grpc.TelemetryServiceStub(self.channel)
        self.signals = signal_service_pb2_grpc.SignalServiceStub(self.channel)

    def signed(self, kind: int, order_id: str, exporter: str, importer: str, amount: str) -> (
            telemetry_pb2.SignedEvent):
        e = telemetry_pb2.LedgerEvent(event_id=uuid.uuid4().hex, wl_id=self.wl_id, correlation_id=uuid.uuid4().hex,
                                      kind=kind, order_id=order_id, exporter_wl=exporter, importer_wl=importer)
        e.amount.currency = f"C-{exporter}"
        e.amount.amount = amount
        e.occur_time.FromDatetime(dt.datetime.now(dt.UTC))
        return sign(e, self.key, self.material.pair.cert_pem, fingerprint=self.fp)

    async def publish(self, events: list[telemetry_pb2.SignedEvent]) -> telemetry_service_pb2.PublishEventsResponse:
        resp = await self.telemetry.PublishEvents(telemetry_service_pb2.PublishEventsRequest(events=events),
                                                  timeout=60)
        if resp.rejected:
            raise RuntimeError(f"bench events refused: {resp.rejected[0].reason}")
        return resp


async def _ingest(pki: PkiDir, db_url: str, args: argparse.Namespace) -> dict[str, float]:
    """Signed events verified and stored per second at the CP, publishers in their own process."""
    wl_ids = [f"bench-{i:02d}" for i in range(args.publishers + args.publishers % 2)]
    async with _running_cp(pki, db_url) as cp:
        await _seed(cp.ctx, wl_ids, "1000000000000")
        if cp.parts.verifier is not None:
            # Steady state, as in a CP that has run for a while: its verification workers are up (a cold CP
            # starts them on its first large batch and verifies inline meanwhile).
            await cp.parts.verifier.start()
        for w in wl_ids[:args.publishers]:
            if not pki.has(Identity.wl(w)):
                pki.issue(Identity.wl(w))
        config = {"target": cp.target, "pki": str(pki.root), "events": args.events // args.publishers,
                  "batch": args.batch, "nodes": [[w, wl_ids[i ^ 1]] for i, w in enumerate(wl_ids[:args.publishers])]}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "xcwl.bench._publishers", json.dumps(config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 300)
            if line.strip() != b"ready":
                raise RuntimeError(f"publisher process failed to start: {line!r}")
            cpu = time.process_time()
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), 600)
            cpu = time.process_time() - cpu  # the CP process's own CPU (verification workers not included)
            if not line:
                raise RuntimeError("publisher process failed (see its stderr)")
            result = json.loads(line)
            result["cp_cpu_s"] = cpu
        finally:
            if proc.returncode is None:
                proc.stdin.close()
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        result["events_per_s"] = float(result["events"]) / float(result["elapsed_s"])
        return result


async def _reaction_samples(cp: _Cp, after_sequence: int) -> tuple[list[float], int]:
    """Reaction times (ms) of DISABLE signals after ``after_sequence``, as acknowledged by their importer."""
    s, a = rt.signals, rt.signal_acks
    async with cp.ctx.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(s.c.sequence, s.c.trigger_received_at, a.c.effective_time)
            .select_from(s.join(a, sa.and_(a.c.signal_id == s.c.signal_id, a.c.wl_id == s.c.importer_wl)))
            .where(s.c.kind == "DISABLE", s.c.sequence > after_sequence)
        )).all()
        last = int((await conn.execute(sa.select(sa.func.max(s.c.sequence)))).scalar() or 0)
    return [(r.effective_time - r.trigger_received_at).total_seconds() * 1000 for r in rows], last


async def _reaction(pki: PkiDir, db_url: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """(crossings one at a time, all pairs crossing at once) reaction samples in ms, with every node watching."""
    count = args.subscribers + args.subscribers % 2
    wl_ids = [f"node-{i:02d}" for i in range(count)]
    async with _running_cp(pki, db_url) as cp:
        await _seed(cp.ctx, wl_ids, "1000")
        nodes = {w: _Node(pki, w, cp.target) for w in wl_ids}
        for n in nodes.values():  # connect the 50 nodes one by one, as nodes starting over time would
            await asyncio.wait_for(n.channel.channel_ready(), 20)
        acked: dict[tuple[str, int], asyncio.Event] = {}
        live = [asyncio.Event() for _ in nodes]

        def waiter(wl_id: str, kind: int) -> asyncio.Event:
            return acked.setdefault((wl_id, kind), asyncio.Event())

        async def enforcer(node: _Node, ready: asyncio.Event) -> None:
            """Stand-in enforcer: acknowledge every signal as effective on receipt."""
            call = node.signals.WatchSignals(signal_service_pb2.WatchSignalsRequest())
            try:
                async for msg in call:
                    if not msg.HasField("signal"):
                        ready.set()
                        continue
                    req = signal_service_pb2.AckSignalRequest(signal_id=msg.signal.signal_id)
                    req.effective_time.FromDatetime(dt.datetime.now(dt.UTC))
                    await node.signals.AckSignal(req, timeout=10)
                    if msg.signal.importer_wl == node.wl_id:
                        waiter(node.wl_id, msg.signal.kind).set()
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.CANCELLED:
                    raise

        tasks = [asyncio.create_task(enforcer(n, r)) for n, r in zip(nodes.values(), live, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in live)), 30)

        async def cross(exporter: _Node, importer: _Node, rnd: int) -> None:
            order = f"{exporter.wl_id}-r{rnd}"
            done = waiter(importer.wl_id, signal_pb2.SIGNAL_KIND_DISABLE)
            done.clear()
            await exporter.publish([exporter.signed(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order, exporter.wl_id,
                                                    importer.wl_id, "1100")])
            await asyncio.wait_for(done.wait(), 30)
            back = waiter(importer.wl_id, signal_pb2.SIGNAL_KIND_ENABLE)
            back.clear()
            await exporter.publish([exporter.signed(KIND.LEDGER_EVENT_KIND_ORDER_CANCELLED, order, exporter.wl_id,
                                                    importer.wl_id, "")])
            await asyncio.wait_for(back.wait(), 30)

        pair_list = [(nodes[wl_ids[i]], nodes[wl_ids[i + 1]]) for i in range(0, count, 2)]
        for rnd in range(args.rounds):
            for exporter, importer in pair_list:
                await cross(exporter, importer, rnd)
        one_at_a_time, last = await _reaction_samples(cp, 0)
        await asyncio.gather(*(cross(e, i, args.rounds) for e, i in pair_list))
        burst, _ = await _reaction_samples(cp, last)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for n in nodes.values():
            await n.channel.close()
        return one_at_a_time, burst


@asynccontextmanager
async def _scratch_postgres(admin_dsn: str) -> AsyncIterator[str]:
    name = f"xcwl_bench_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=1000, method="inclusive")[int(q * 1000) - 1]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns the flat figure map printed by ``--json``."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xcwl-bench-risk-") as tmp:
        pki = PkiDir(Path(tmp) / "pki")
        pki.init_ca()
        samples, burst = await _reaction(pki, f"sqlite:///{tmp}/reaction.db", args)
        out["risk.reaction.p50_ms.n50"] = round(_pct(samples, 0.5), 3)
        out["risk.reaction.p99_ms.n50"] = round(_pct(samples, 0.99), 3)
        out["risk.reaction.samples"] = len(samples)
        out["risk.reaction.p50_ms.n50.burst"] = round(_pct(burst, 0.5), 3)
        out["risk.reaction.p99_ms.n50.burst"] = round(_pct(burst, 0.99), 3)
        ingest = await _ingest(pki, f"sqlite:///{tmp}/ingest.db", args)
        out["risk.ingest.events_per_s.sqlite"] = round(ingest["events_per_s"], 1)
        if not args.skip_postgres:
            async with _scratch_postgres(args.pg_admin_dsn) as url:
                ingest = await _ingest(pki, url, args)
                out["risk.ingest.events_per_s.postgres"] = round(ingest["events_per_s"], 1)
    return out


if __name__ == "__main__":  # python -m xcwl.bench.risk (until the CLI wires ``xcwl bench risk``)
    _parser = argparse.ArgumentParser(prog="xcwl bench risk")
    add_arguments(_parser)
    print(json.dumps(asyncio.run(run(_parser.parse_args()))))
