"""``xcwl bench risk``: reaction time of the risk guardrail and ingest throughput of signed events.

* Reaction (``risk.reaction.p50_ms.n50`` / ``p99_ms.n50``): 50 WL nodes (25 pairs), each the node's own risk
  feature — enforcer, trade gate, local guard, built by the node's composition root with its own mTLS identity,
  CP channel and durable SQLite store (``xcwl.bench._enforcers``, in a child process so this process holds only
  the CP; ``--enforcer-procs`` spreads them over more) — keep WatchSignals open. Pair after pair, round after
  round, an exporter node publishes (its own key and channel) a signed EXPORT_CONFIRMED that takes its pair
  over the limit; the CP issues DISABLE to both nodes of the pair; each node's enforcer applies it (memory: its
  gate refuses from then on; the direction listeners the node registers; one transaction with state, cursor
  and ENFORCEMENT_ACK on its store) and calls AckSignal with the effective time. Reaction = the importer's ack
  effective time − the CP's receipt of the crossing event (both stored at the CP).
  ``risk.reaction.acked_p50_ms`` / ``acked_p99_ms`` use the CP's receipt of the AckSignal instead, so they
  include the node's listeners, durable write and the call. The exporter then cancels the order and the CP
  re-enables before the next crossing. A last round where all 25 pairs cross at the same instant gives
  ``risk.reaction.p50_ms.n50.burst`` / ``p99_ms.n50.burst``. After every applied signal the child asks the
  node's gate (``check_import`` / ``check_export``: the checks of its checkout and order desk) whether it trades
  the direction: refused with DIRECTION_DISABLED after a DISABLE (the opposite direction open), open again
  after the ENABLE. The bench fails unless every node enforced (``risk.reaction.nodes_enforcing`` = nodes,
  ``risk.reaction.mismatches`` = 0), every signal was acknowledged by AckSignal and stored as an
  ENFORCEMENT_ACK on its node (``risk.reaction.durable_acks``), and every crossing gave one sample. The nodes
  run only the risk loops (no server, policy agent, catalog sync or telemetry shipper); their policy view is a
  fixed one with the pair ACTIVE.
* Ingest (``risk.ingest.events_per_s.{sqlite,postgres}``): signed events verified and stored per second at the
  CP. 4 nodes (2 pairs) publish 20,000 pre-signed events, alternately an EXPORT_CONFIRMED of their own and the
  IMPORT_FINALIZED of their partner's (5,000 per node, half the orders agreed during the run; signing is the
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
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cp_server.audit.log import AuditLog
from cp_server.authz import TABLE as CP_AUTHZ
from cp_server.context import CpContext
from cp_server.risk import tables as rt
from cp_server.risk_services import RiskParts, build
from cp_server.settings import CpSettings
from cp_server.slo import component as slo_component
from cp_server.store.schema import pairs, white_labels
from xcwl.bench._scratch import scratch_postgres
from xwl_runtime import db
from xwl_runtime.clock import SystemClock
from xwl_runtime.identity import Identity
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.pki import PkiDir
from xwl_runtime.server import Listener, start_server
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial

from ..progress import announce
from ._interleave import percentile

MIGRATIONS = Path(__file__).resolve().parents[3] / "cp_server" / "store" / "migrations"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``xcwl bench risk``."""
    parser.add_argument("--events", type=int, default=20_000, help="signed events to ingest per backend")
    parser.add_argument("--batch", type=int, default=500, help="events per PublishEvents call")
    parser.add_argument("--publishers", type=int, default=4, help="nodes publishing concurrently")
    parser.add_argument("--subscribers", type=int, default=50, help="nodes watching signals (even)")
    parser.add_argument("--rounds", type=int, default=4, help="limit crossings per pair")
    parser.add_argument("--enforcer-procs", type=int, default=1,
                        help="child processes the subscribed nodes' enforcers are spread over")
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
    component, parts = build(ctx, slo=slo_component.install(ctx))
    server = await start_server(
        registrations=component.registrations, service_names=component.service_names,
        listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(material).credentials)],
        authz_table=CP_AUTHZ,
    )
    lifecycle = Lifecycle(server, [component], closers=[engine.dispose])
    lifecycle.start_loops()
    try:
        yield _Cp(f"127.0.0.1:{server.port}", ctx, parts)
    finally:
        await lifecycle.stop(0)


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
        return await drive_publishers(config)


async def drive_publishers(config: dict[str, Any],
                           before_go: Callable[[], Awaitable[None]] | None = None) -> dict[str, float]:
    """Run the publisher process (``xcwl.bench._publishers``) with ``config`` against a CP in this process: wait for
    it to be ready, await ``before_go()`` if given, start it, and return its figures with this process's CPU over
    the run (``cp_cpu_s``, verification workers not included) and ``events_per_s``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xcwl.bench._publishers", json.dumps(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 300)
        if line.strip() != b"ready":
            raise RuntimeError(f"publisher process failed to start: {line!r}")
        if before_go is not None:
            await before_go()
        cpu = time.process_time()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 600)
        cpu = time.process_time() - cpu
        if not line:
            raise RuntimeError("publisher process failed (see its stderr)")
        result: dict[str, float] = json.loads(line)
    finally:
        if proc.returncode is None:
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    result["cp_cpu_s"] = cpu
    result["events_per_s"] = float(result["events"]) / float(result["elapsed_s"])
    return result


@dataclass
class _Samples:
    """Per DISABLE signal acknowledged by its importer, in ms from the CP's receipt of the crossing event."""

    effective: list[float]
    """… to the effective time the node reports (its enforcement took effect in memory: the gate refuses)."""
    acked: list[float]
    """… to the CP's receipt of the node's AckSignal (after its listeners, durable write and the call)."""
    not_rpc: int
    """Acknowledgements that did not come by AckSignal (must be 0 here)."""


async def _reaction_samples(cp: _Cp, after_sequence: int) -> tuple[_Samples, int]:
    """Reaction samples of DISABLE signals after ``after_sequence``, as acknowledged by their importer."""
    s, a = rt.signals, rt.signal_acks
    async with cp.ctx.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(s.c.trigger_received_at, a.c.effective_time, a.c.received_at, a.c.via)
            .select_from(s.join(a, sa.and_(a.c.signal_id == s.c.signal_id, a.c.wl_id == s.c.importer_wl)))
            .where(s.c.kind == "DISABLE", s.c.sequence > after_sequence)
        )).all()
        last = int((await conn.execute(sa.select(sa.func.max(s.c.sequence)))).scalar() or 0)
    return _Samples(
        effective=[(r.effective_time - r.trigger_received_at).total_seconds() * 1000 for r in rows],
        acked=[(r.received_at - r.trigger_received_at).total_seconds() * 1000 for r in rows],
        not_rpc=sum(1 for r in rows if r.via != "rpc"),
    ), last


class _Enforcers:
    """The real node enforcers, in ``procs`` child processes (``xcwl.bench._enforcers``), seen from the CP's side."""

    def __init__(self, pki: PkiDir, target: str, pairs: list[tuple[str, str]], procs: int, root: Path) -> None:
        self._pki, self._target, self._root = pki, target, root
        self._groups = [pairs[i::procs] for i in range(procs) if pairs[i::procs]]
        self._procs: list[asyncio.subprocess.Process] = []
        self._readers: list[asyncio.Task[dict[str, Any]]] = []
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self._published: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._proc_of: dict[str, int] = {e: n for n, group in enumerate(self._groups) for e, _ in group}
        self.mismatch_lines: list[str] = []

    def event(self, wl_id: str, kind: str) -> asyncio.Event:
        """Set when ``wl_id``'s enforcer has applied and acknowledged a signal of ``kind`` (DISABLE/ENABLE)."""
        return self._events.setdefault((wl_id, kind), asyncio.Event())

    async def start(self) -> None:
        for n, group in enumerate(self._groups):
            config = {"target": self._target, "pki": str(self._pki.root), "dir": str(self._root / f"proc-{n}"),
                      "pairs": [list(p) for p in group]}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "xcwl.bench._enforcers", json.dumps(config),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self._procs.append(proc)
        for proc in self._procs:  # started together; each connects its nodes one after the other
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            if line.strip() != b"ready":
                raise RuntimeError(f"enforcer process failed to start: {line!r} (see its stderr)")
        self._readers = [asyncio.create_task(self._read(p)) for p in self._procs]

    async def publish(self, kind: str, order_id: str, exporter_wl: str, importer_wl: str) -> None:
        """Have the exporter node sign and publish its EXPORT (crossing) or CANCEL event; wait for the CP's answer."""
        done = self._published[(kind, order_id)] = asyncio.get_running_loop().create_future()
        stdin = self._procs[self._proc_of[exporter_wl]].stdin
        assert stdin is not None
        stdin.write(f"x {kind} {order_id} {exporter_wl} {importer_wl}\n".encode())
        await stdin.drain()
        verdict = await asyncio.wait_for(done, 30)
        if verdict != "ok":
            raise RuntimeError(f"{exporter_wl} could not publish {kind} {order_id}: {verdict}")

    async def _read(self, proc: asyncio.subprocess.Process) -> dict[str, Any]:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode().strip()
            if line.startswith("{"):
                summary: dict[str, Any] = json.loads(line)
                return summary
            parts = line.split(" ")
            if len(parts) == 4 and parts[0] == "p":
                self._published.pop((parts[1], parts[2])).set_result(parts[3])
                continue
            if len(parts) != 5 or parts[0] != "s":
                raise RuntimeError(f"unexpected line from an enforcer process: {line!r}")
            _, wl_id, kind, _, verdict = parts
            if verdict != "ok":
                self.mismatch_lines.append(line)
            self.event(wl_id, kind).set()
        raise RuntimeError("an enforcer process ended without its summary (see its stderr)")

    async def stop(self) -> dict[str, int]:
        """Stop the nodes; their summed summaries (see ``xcwl.bench._enforcers``)."""
        for proc in self._procs:
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
        total = {"applied": 0, "mismatches": 0, "acks_sent": 0, "durable_acks": 0, "nodes_enforcing": 0}
        try:
            for summary in await asyncio.wait_for(asyncio.gather(*self._readers), 60):
                for key in total:
                    total[key] += int(summary[key])
        finally:
            for proc in self._procs:
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        return total


@dataclass
class _Reaction:
    one_at_a_time: _Samples
    burst: _Samples
    nodes: int
    summary: dict[str, int]
    mismatch_lines: list[str]


async def _reaction(pki: PkiDir, db_url: str, args: argparse.Namespace, root: Path) -> _Reaction:
    """(crossings one at a time, all pairs crossing at once) reaction samples in ms, every node enforcing."""
    count = args.subscribers + args.subscribers % 2
    wl_ids = [f"node-{i:02d}" for i in range(count)]
    for w in wl_ids:
        if not pki.has(Identity.wl(w)):
            pki.issue(Identity.wl(w))
    pair_ids = [(wl_ids[i], wl_ids[i + 1]) for i in range(0, count, 2)]
    async with _running_cp(pki, db_url) as cp:
        await _seed(cp.ctx, wl_ids, "1000")
        enforcers = _Enforcers(pki, cp.target, pair_ids, max(1, args.enforcer_procs), root)
        try:
            await enforcers.start()

            async def cross(exporter_wl: str, importer_wl: str, rnd: int) -> None:
                order = f"{exporter_wl}-r{rnd}"
                both = (exporter_wl, importer_wl)  # both nodes of the pair watch and enforce the direction
                for w in both:
                    enforcers.event(w, "DISABLE").clear()
                await enforcers.publish("EXPORT", order, exporter_wl, importer_wl)
                await asyncio.wait_for(asyncio.gather(*(enforcers.event(w, "DISABLE").wait() for w in both)), 30)
                for w in both:
                    enforcers.event(w, "ENABLE").clear()
                await enforcers.publish("CANCEL", order, exporter_wl, importer_wl)
                await asyncio.wait_for(asyncio.gather(*(enforcers.event(w, "ENABLE").wait() for w in both)), 30)

            for rnd in range(args.rounds):
                for exporter_wl, importer_wl in pair_ids:
                    await cross(exporter_wl, importer_wl, rnd)
            one_at_a_time, last = await _reaction_samples(cp, 0)
            await asyncio.gather(*(cross(e, i, args.rounds) for e, i in pair_ids))
            burst, _ = await _reaction_samples(cp, last)
        finally:
            summary = await enforcers.stop()
        return _Reaction(one_at_a_time, burst, count, summary, enforcers.mismatch_lines)


def _check_enforced(reaction: _Reaction, args: argparse.Namespace, figures: dict[str, Any]) -> None:
    """Fail loudly unless every sample came from a node that acknowledged AND refused the direction."""
    pairs = reaction.nodes // 2
    crossings = pairs * (args.rounds + 1)
    problems = []
    if reaction.summary["mismatches"] or reaction.mismatch_lines:
        problems.append(f"{reaction.summary['mismatches']} gate mismatches: {reaction.mismatch_lines[:5]}")
    if reaction.summary["nodes_enforcing"] != reaction.nodes:
        problems.append(f"{reaction.summary['nodes_enforcing']} of {reaction.nodes} nodes enforced a DISABLE")
    if reaction.summary["applied"] != 4 * crossings:  # DISABLE + ENABLE on both nodes of the pair
        problems.append(f"{reaction.summary['applied']} signals applied, expected {4 * crossings}")
    # Every signal is acknowledged: DISABLE and ENABLE, and the 80% ALERT and its clearing, on both nodes.
    for key, what in (("acks_sent", "AckSignal calls answered"), ("durable_acks", "ENFORCEMENT_ACK events stored")):
        if reaction.summary[key] != 8 * crossings:
            problems.append(f"{reaction.summary[key]} {what}, expected {8 * crossings}")
    if reaction.one_at_a_time.not_rpc or reaction.burst.not_rpc:
        problems.append("acknowledgements reached the CP otherwise than by AckSignal")
    if len(reaction.one_at_a_time.effective) != pairs * args.rounds or len(reaction.burst.effective) != pairs:
        problems.append(f"{len(reaction.one_at_a_time.effective)}/{len(reaction.burst.effective)} acknowledged "
                        "samples, expected "
                        f"{pairs * args.rounds}/{pairs}")
    if problems:
        raise RuntimeError(f"risk bench: nodes did not enforce: {'; '.join(problems)} (figures: {figures})")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns the flat figure map printed by ``--json``."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xcwl-bench-risk-") as tmp:
        pki = PkiDir(Path(tmp) / "pki")
        pki.init_ca()
        announce(args, "signal reaction")
        reaction = await _reaction(pki, f"sqlite:///{tmp}/reaction.db", args, Path(tmp) / "nodes")
        one, burst = reaction.one_at_a_time, reaction.burst
        out["risk.reaction.p50_ms.n50"] = round(percentile(one.effective, 0.5), 3)
        out["risk.reaction.p99_ms.n50"] = round(percentile(one.effective, 0.99), 3)
        out["risk.reaction.samples"] = len(one.effective)
        out["risk.reaction.acked_p50_ms.n50"] = round(percentile(one.acked, 0.5), 3)
        out["risk.reaction.acked_p99_ms.n50"] = round(percentile(one.acked, 0.99), 3)
        out["risk.reaction.p50_ms.n50.burst"] = round(percentile(burst.effective, 0.5), 3)
        out["risk.reaction.p99_ms.n50.burst"] = round(percentile(burst.effective, 0.99), 3)
        out["risk.reaction.acked_p99_ms.n50.burst"] = round(percentile(burst.acked, 0.99), 3)
        out["risk.reaction.samples.burst"] = len(burst.effective)
        out["risk.reaction.nodes"] = reaction.nodes
        out["risk.reaction.nodes_enforcing"] = reaction.summary["nodes_enforcing"]
        out["risk.reaction.signals_applied"] = reaction.summary["applied"]
        out["risk.reaction.durable_acks"] = reaction.summary["durable_acks"]
        out["risk.reaction.mismatches"] = max(reaction.summary["mismatches"], len(reaction.mismatch_lines))
        out["risk.reaction.enforcer_procs"] = max(1, args.enforcer_procs)
        _check_enforced(reaction, args, out)
        announce(args, "event ingest (sqlite)")
        ingest = await _ingest(pki, f"sqlite:///{tmp}/ingest.db", args)
        out["risk.ingest.events_per_s.sqlite"] = round(ingest["events_per_s"], 1)
        if not args.skip_postgres:
            announce(args, "event ingest (postgres)")
            async with scratch_postgres(args.pg_admin_dsn) as url:
                ingest = await _ingest(pki, url, args)
                out["risk.ingest.events_per_s.postgres"] = round(ingest["events_per_s"], 1)
    return out


if __name__ == "__main__":  # python -m xcwl.bench.risk (same as ``xcwl bench risk``)
    _parser = argparse.ArgumentParser(prog="xcwl bench risk")
    add_arguments(_parser)
    print(json.dumps(asyncio.run(run(_parser.parse_args()))))
