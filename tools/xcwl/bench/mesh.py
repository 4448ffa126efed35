"""A CP and N real WL node processes, every pair open: idle cost, propagation, trade, risk and invariants.

Per N in ``--nodes`` (e.g. ``10,50``; each N gets a fresh world): a fresh PKI; the CP (``--postgres``: two replicas
on one scratch PostgreSQL database behind a TCP balancer); N ``xcwl wl serve`` processes, each enrolling online
with its own certificate and its own SQLite store; all N(N−1)/2 pairs opened; ``--offers`` offers published per WL
and every catalog synced. Then, printing progress on stderr:

* **idle** — after ``--settle`` s, CPU % of one core per node and for the CP over ``--idle`` s (utime + stime
  from ``/proc/<pid>/stat``), and each node's RSS (``VmRSS``) and PSS (``smaps_rollup``: shared library pages
  divided among the processes that map them);
* **policy** — ``--policy-changes`` WL renames, each in every node's view: commit request → the CP's receipt of
  each node's applied-version report (p50/p99 over N samples per change); **revocation** the same once
  ``AdminService/RevokeCertificate`` exists (a hook; skipped and said so otherwise);
* **trade** — one checkout every 1/``--rate`` s for ``--trade`` s between random pairs through the importer's
  local API (open loop): confirm p50/p99 (the Checkout RPC, which returns once the exporter confirmed and the
  import was recorded), e2e p99 (from the scheduled start), error rate;
* **risk** — a few disjoint pairs driven over their limit: DISABLE issue at the CP → effective at both nodes;
* **fault** (``--postgres``) — replica 1 killed mid-trade; a change made afterwards reaches every node through
  replica 2; replica 1 restarted;
* **invariants** — stock sold = confirmed = completed = imported units, no PENDING checkout, every event shipped,
  the CP's balances equal their recomputation; a violation fails the run (exit 1).

Figures per N: ``mesh.idle.cpu_pct_per_node.n<N>`` (mean; ``…_max`` too), ``mesh.idle.cpu_pct_cp.n<N>``,
``mesh.rss_mb_per_node.n<N>`` (mean; ``…_max``), ``mesh.pss_mb_per_node.n<N>`` (mean), the same right after the
trade phase (``mesh.rss_mb_per_node_after_trade.n<N>``, ``mesh.pss_mb_per_node_after_trade.n<N>``: a node that
has served and placed orders has also loaded what only trading needs),
``mesh.policy.p50_ms|p99_ms.n<N>``, ``mesh.confirm.p50_ms|p99_ms.n<N>``, ``mesh.e2e.p99_ms.n<N>``,
``mesh.error_rate.n<N>``, ``mesh.reaction.p99_ms.n<N>``, ``mesh.invariants_ok.n<N>``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from xcwl.bench._scratch import scratch_postgres

from ..errors import CliError
from . import _mesh_phases as phases
from ._interleave import percentile
from ._mesh_world import MeshWorld, mesh
from ._procstat import pss_mb, rss_mb

DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``xcwl bench mesh``."""
    parser.add_argument("--nodes", default="10", help="comma-separated N values, each a fresh world (2..50)")
    parser.add_argument("--offers", type=int, default=3, help="offers published per WL")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds left alone before the idle window")
    parser.add_argument("--idle", type=float, default=30.0, help="idle window, seconds")
    parser.add_argument("--policy-changes", type=int, default=5, help="policy changes measured")
    parser.add_argument("--rate", type=float, default=50.0, help="offered checkouts per second")
    parser.add_argument("--trade", type=float, default=60.0, help="seconds of trade")
    parser.add_argument("--risk-pairs", type=int, default=3, help="pairs driven over their limit")
    parser.add_argument("--postgres", action="store_true", help="the CP as two replicas on one PostgreSQL")
    parser.add_argument("--pg-admin-dsn", default=os.environ.get("XCWL_BENCH_PG_DSN", DEFAULT_PG_ADMIN),
                        help="PostgreSQL server where the scratch CP database is created")
    parser.add_argument("--workdir", help="keep PKI, stores and logs here (default: a temp dir, removed)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the trade phase")


def _progress(line: str) -> None:
    print(f"[mesh {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _ns(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--nodes: expected numbers like 10,50, got {text[:40]!r}") from None
    if not values or any(not 2 <= v <= 50 for v in values):
        raise CliError(f"--nodes: each N must be 2..50, got {text[:40]!r}")
    return values


@contextlib.asynccontextmanager
async def _cp_database(args: argparse.Namespace) -> AsyncIterator[str]:
    if not args.postgres:
        yield ""
        return
    async with scratch_postgres(args.pg_admin_dsn, "xcwl_mesh") as url:
        yield url


async def _one_n(args: argparse.Namespace, root: Path, n: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    tag = f"n{n}"
    async with _cp_database(args) as pg_url, mesh(root, n, args.offers, _progress, pg_url) as world:
        idle = await phases.idle(world, args.idle, args.settle)
        node_cpu, rss = list(idle.node_cpu.values()), list(idle.node_rss.values())
        figures[f"mesh.idle.cpu_pct_per_node.{tag}"] = statistics.fmean(node_cpu)
        figures[f"mesh.idle.cpu_pct_per_node_max.{tag}"] = max(node_cpu)
        figures[f"mesh.idle.cpu_pct_cp.{tag}"] = sum(idle.cp_cpu.values())
        figures[f"mesh.rss_mb_per_node.{tag}"] = statistics.fmean(rss)
        figures[f"mesh.rss_mb_per_node_max.{tag}"] = max(rss)
        pss = list(idle.node_pss.values())
        figures[f"mesh.pss_mb_per_node.{tag}"] = statistics.fmean(pss)
        _progress(f"idle {args.idle:.0f} s: node CPU mean {statistics.fmean(node_cpu):.2f}% max {max(node_cpu):.2f}%"
                  f" of one core; CP {sum(idle.cp_cpu.values()):.2f}%; RSS mean {statistics.fmean(rss):.1f} MiB "
                  f"max {max(rss):.1f} MiB; PSS mean {statistics.fmean(pss):.1f} MiB")

        policy = await phases.policy_propagation(world, args.policy_changes)
        figures[f"mesh.policy.p50_ms.{tag}"] = percentile(policy, 0.5)
        figures[f"mesh.policy.p99_ms.{tag}"] = percentile(policy, 0.99)
        _progress(f"policy: {args.policy_changes} changes x {n} nodes: p50 {percentile(policy, 0.5):.0f} ms, "
                  f"p99 {percentile(policy, 0.99):.0f} ms")
        revocation = await phases.revocation_propagation(world)
        figures[f"mesh.revocation.p50_ms.{tag}"] = percentile(revocation, 0.5)
        figures[f"mesh.revocation.p99_ms.{tag}"] = percentile(revocation, 0.99)
        _progress(f"revocation: 2 revocations x {n} nodes: p50 {percentile(revocation, 0.5):.0f} ms, "
                  f"p99 {percentile(revocation, 0.99):.0f} ms")

        rng = random.Random(args.seed)

        async def run_trade() -> phases.Trade:
            _progress(f"trade: {args.rate:g} checkouts/s for {args.trade:g} s across random pairs")
            return await phases.trade(world, args.rate, args.trade, rng)

        if args.postgres:
            holder: list[phases.Trade] = []

            async def during() -> None:
                holder.append(await run_trade())

            fault = await phases.replica_fault(world, during, _progress)
            figures[f"mesh.fault.policy_after_kill_ms.{tag}"] = fault["policy_after_kill_ms"]
            trade = holder[0]
        else:
            trade = await run_trade()
        _record_trade(figures, tag, trade)
        traded = {name: (rss_mb(p.popen.pid), pss_mb(p.popen.pid)) for name, p in world.node_procs.items()}
        figures[f"mesh.rss_mb_per_node_after_trade.{tag}"] = statistics.fmean(r for r, _ in traded.values())
        figures[f"mesh.pss_mb_per_node_after_trade.{tag}"] = statistics.fmean(p for _, p in traded.values())
        _progress(f"after trade: RSS mean {figures[f'mesh.rss_mb_per_node_after_trade.{tag}']:.1f} MiB max "
                  f"{max(r for r, _ in traded.values()):.1f} MiB; PSS mean "
                  f"{figures[f'mesh.pss_mb_per_node_after_trade.{tag}']:.1f} MiB")

        if args.risk_pairs > 0:
            reaction = await phases.risk_reaction(world, args.risk_pairs, _progress)
            figures[f"mesh.reaction.p99_ms.{tag}"] = percentile(reaction, 0.99)
            _progress(f"risk: reaction p50 {percentile(reaction, 0.5):.0f} ms, "
                      f"p99 {percentile(reaction, 0.99):.0f} ms")
        else:
            _progress("risk: skipped (--risk-pairs 0)")

        inv = await phases.invariants(world)
        figures[f"mesh.invariants_ok.{tag}"] = 0.0 if inv.problems else 1.0
        _progress(f"invariants: sold {inv.sold} = confirmed {inv.confirmed} = completed {inv.completed} = "
                  f"imported {inv.imported}; " + ("; ".join(inv.problems) if inv.problems else "all hold"))
        _check_world(world)
    return figures


def _record_trade(figures: dict[str, float], tag: str, trade: phases.Trade) -> None:
    figures[f"mesh.confirm.p50_ms.{tag}"] = percentile(trade.confirm_ms, 0.5)
    figures[f"mesh.confirm.p99_ms.{tag}"] = percentile(trade.confirm_ms, 0.99)
    figures[f"mesh.e2e.p99_ms.{tag}"] = percentile(trade.e2e_ms, 0.99)
    figures[f"mesh.error_rate.{tag}"] = trade.errors / trade.attempted if trade.attempted else 0.0
    _progress(f"trade: {trade.attempted} checkouts, confirm p50 {figures[f'mesh.confirm.p50_ms.{tag}']:.1f} ms "
              f"p99 {figures[f'mesh.confirm.p99_ms.{tag}']:.1f} ms, e2e p99 {figures[f'mesh.e2e.p99_ms.{tag}']:.1f} "
              f"ms, errors {trade.errors} {dict(sorted(trade.error_kinds.items())) if trade.errors else ''}")


def _check_world(world: MeshWorld) -> None:
    dead = [p.name for p in world.node_procs.values() if p.popen.poll() is not None]
    if dead:
        raise CliError(f"node process(es) died during the run: {dead[:10]}")


async def run(args: argparse.Namespace) -> dict[str, float]:
    """Every N in turn; exits non-zero (CliError) when an invariant is violated."""
    figures: dict[str, float] = {}
    for n in _ns(args.nodes):
        _progress(f"--- N = {n} ---")
        if args.workdir:
            root = Path(args.workdir) / f"n{n}"
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            figures.update(await _one_n(args, root, n))
        else:
            with tempfile.TemporaryDirectory(prefix=f"xcwl-mesh-n{n}-") as tmp:
                figures.update(await _one_n(args, Path(tmp), n))
    broken = [k for k, v in figures.items() if k.startswith("mesh.invariants_ok.") and v != 1.0]
    if broken:
        raise CliError(f"invariants violated: {', '.join(broken)} (details on stderr)")
    return figures
