"""``xcwl bench dashboard``: server time of the dashboard's pages on a loaded store, and ingest with vs without
rollups in the same run.

* Pages (``dashboard.{overview,heatmap,pair}.p99_ms.{sqlite,postgres}``): a CP store migrated with every branch
  and loaded with ``--wls`` WLs (every pair registered: ``--wls`` × (``--wls`` − 1) directions) and the state
  ``--events`` ledger events leave behind — one order per two events (confirmation and finalization), spread over
  the pairs and over ``--days`` days: their ``risk_orders`` rows, the pairs' balances and the hourly and monthly
  rollups — written directly in bulk (pushing a million signed events through PublishEvents would take the
  ingest's own time, measured below). Each page's data is then built ``--samples`` times, as the HTTP handler
  builds it (``cp_server.dashboard.web.build_page``, XporY scope, one connection from the pool each), and the
  p50 / p99 wall time is reported, with the CP process's CPU per page (``cpu_ms``).
* Ingest (``dashboard.ingest.events_per_s.{with,without}_rollups.{sqlite,postgres}`` and their ``ratio``): the
  risk bench's ingest (its CP, 4 publishing nodes in their own process, pre-signed events, batches of 500) on a
  fresh database per run, with the rollups kept (``RiskEngine.rollups``) or not. Each round runs both variants at
  the same time, each CP in its own process (``xcwl.bench._rollup_ingest``), both publishing on the same signal,
  so the other work of a shared machine weighs on both alike (they also share the machine with each other, so
  each gets about half of what a run alone would). After one discarded warm-up round, ``--ingest-rounds``
  rounds: the figures are the medians, ``ratio`` the median of the per-round ratios with / without,
  ``ratio_min`` / ``ratio_max`` their extremes. The CP's CPU per event (``cpu_us_per_event``, median) is printed
  with them, and ``cpu_ratio`` = median CPU per event without / with (the CP process only: its verification
  workers are not counted, so the rollups' share of the whole ingest is smaller than this shows).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from cp_server.audit.log import AuditLog
from cp_server.dashboard.access import Principal
from cp_server.dashboard.web import Sources, build_page
from cp_server.risk import tables as rt
from cp_server.rollups import tables as ro
from cp_server.rollups.buckets import hour_of, month_of
from cp_server.slo.report import SloReporter
from cp_server.store.schema import pairs, white_labels
from xcwl.bench._scratch import scratch_postgres
from xwl_runtime import db
from xwl_runtime.clock import SystemClock
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir

from ..progress import announce
from . import risk as risk_bench
from ._interleave import percentile
from ._rollup_ingest import WL_IDS as _INGEST_WLS

CHUNK = 5000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wls", type=int, default=50, help="WLs (every pair registered)")
    parser.add_argument("--events", type=int, default=1_000_000, help="ledger events the loaded state stands for")
    parser.add_argument("--days", type=int, default=60, help="days the trade is spread over")
    parser.add_argument("--samples", type=int, default=200, help="builds of each page")
    parser.add_argument("--ingest-events", type=int, default=20_000, help="signed events per ingest run")
    parser.add_argument("--ingest-rounds", type=int, default=7,
                        help="rounds of ingest with and without rollups side by side (medians reported)")
    parser.add_argument("--pg-admin-dsn", default=risk_bench.DEFAULT_PG_ADMIN, help="PostgreSQL for a scratch db")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")


async def _load(url: str, args: argparse.Namespace) -> None:
    await asyncio.to_thread(db.upgrade, url, risk_bench.MIGRATIONS, version_table="cp_alembic_version")
    engine = db.create_engine(url)
    now = dt.datetime.now(dt.UTC)
    wls = [f"wl-{i:03d}" for i in range(args.wls)]
    keys = [(a, b) for i, a in enumerate(wls) for b in wls[i + 1:]]
    orders = max(1, args.events // 2)
    hours = max(1, args.days * 24)
    try:
        async with engine.begin() as conn:
            await conn.execute(white_labels.insert(), [
                {"wl_id": w, "name": w, "currency": f"C-{w}", "currency_decimals": 2, "reference_rate": "1",
                 "trader_endpoint": "127.0.0.1:1", "created_at": now, "updated_at": now, "changed_version": 0}
                for w in wls])
            await conn.execute(pairs.insert(), [
                {"wl_a": a, "wl_b": b, "status": "ACTIVE", "imbalance_limit": "100000", "fx_rate": "1",
                 "fx_version": 1, "imports_frozen": False, "created_at": now, "updated_at": now, "changed_version": 0}
                for a, b in keys])
        per_pair = orders // len(keys) + 1
        hour_rows: dict[tuple[str, str, dt.datetime], list[Any]] = {}
        order_rows: list[dict[str, Any]] = []
        for n in range(orders):
            a, b = keys[n % len(keys)]
            at = now - dt.timedelta(hours=(n // len(keys)) * hours // per_pair)
            exporter, importer = (a, b) if n % 3 else (b, a)
            order_rows.append({
                "order_id": f"o-{n}", "exporter_wl": exporter, "importer_wl": importer, "wl_a": a, "wl_b": b,
                "correlation_id": f"c-{n}", "first_seen_at": at, "export_event_id": f"e-{n}", "export_value": "10",
                "confirmed_at": at, "finalize_event_id": f"f-{n}", "finalized_at": at, "cancelled_at": None,
                "export_amount": "10", "export_quantity": 1, "import_amount": "10", "import_quantity": 1,
                "compensated_at": None, "settled_at": None, "counted": True, "agreement": "AGREED"})
            h = hour_rows.setdefault((a, b, hour_of(at)), [0, 0])
            h[0 if exporter == a else 1] += 1
            if len(order_rows) >= CHUNK:
                async with engine.begin() as conn:
                    await conn.execute(rt.orders.insert(), order_rows)
                order_rows = []
        async with engine.begin() as conn:
            if order_rows:
                await conn.execute(rt.orders.insert(), order_rows)
            months: dict[tuple[str, str, dt.datetime], list[int]] = {}
            balances: dict[tuple[str, str], list[int]] = {}
            rows = []
            for (a, b, hour), (ab, ba) in hour_rows.items():
                rows.append(_rollup(a, b, "hour", hour, ab, ba))
                m = months.setdefault((a, b, month_of(hour)), [0, 0])
                m[0], m[1] = m[0] + ab, m[1] + ba
                t = balances.setdefault((a, b), [0, 0])
                t[0], t[1] = t[0] + ab, t[1] + ba
            for i in range(0, len(rows), CHUNK):
                await conn.execute(ro.hours.insert(), rows[i:i + CHUNK])
            await conn.execute(ro.months.insert(), [_rollup(a, b, "month", m, ab, ba)
                                                    for (a, b, m), (ab, ba) in months.items()])
            await conn.execute(rt.balances.insert(), [
                {"wl_a": a, "wl_b": b, "exports_ab": str(ab * 10), "exports_ba": str(ba * 10), "level": "OK",
                 "limit_used": "100000", "open_alert_id": None, "disabled_exporter": None, "event_count": 2 * (ab + ba),
                 "updated_at": now} for (a, b), (ab, ba) in balances.items()])
    finally:
        await engine.dispose()


def _rollup(a: str, b: str, column: str, bucket: dt.datetime, ab: int, ba: int) -> dict[str, Any]:
    return {"wl_a": a, "wl_b": b, column: bucket, "exports_ab": str(Decimal(ab * 10)),
            "exports_ba": str(Decimal(ba * 10)), "amount_ab": str(ab * 10), "amount_ba": str(ba * 10),
            "orders_ab": ab, "orders_ba": ba, "views_ab": 4 * ab, "views_ba": 4 * ba, "checkouts_ab": ab,
            "checkouts_ba": ba, "events": 2 * (ab + ba)}


async def _pages(url: str, pki: PkiDir, args: argparse.Namespace, backend: str) -> dict[str, float]:
    engine = db.create_engine(url)
    clock = SystemClock()
    src = Sources(engine, clock, AuditLog(pki.load_ca().key, clock), dt.timedelta(hours=1), SloReporter(engine))
    ops = Principal("spiffe://xporty/ops/bench", None)
    out: dict[str, float] = {}
    try:
        for name, params in (("overview", {}), ("heatmap", {}), ("pair", {"wl_a": "wl-000", "wl_b": "wl-001"})):
            await build_page(src, ops, name, params)  # warm the pool and caches
            samples = []
            cpu = time.process_time()
            for _ in range(args.samples):
                started = time.perf_counter()
                await build_page(src, ops, name, params)
                samples.append((time.perf_counter() - started) * 1000)
            cpu = time.process_time() - cpu
            out[f"dashboard.{name}.p50_ms.{backend}"] = round(percentile(samples, 0.5), 3)
            out[f"dashboard.{name}.p99_ms.{backend}"] = round(percentile(samples, 0.99), 3)
            out[f"dashboard.{name}.cpu_ms.{backend}"] = round(cpu * 1000 / args.samples, 3)
    finally:
        await engine.dispose()
    return out


async def _child(pki: PkiDir, url: str, events: int, rollups: bool) -> asyncio.subprocess.Process:
    config = {"pki": str(pki.root), "url": url, "events": events, "batch": 500, "rollups": rollups}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xcwl.bench._rollup_ingest", json.dumps(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)


async def _pair_of_runs(pki: PkiDir, urls: tuple[str, str], events: int) -> dict[bool, dict[str, float]]:
    """Ingest without (``urls[0]``) and with rollups (``urls[1]``) at the same time, each CP in its own process;
    both start publishing on the same signal."""
    procs = {False: await _child(pki, urls[0], events, False), True: await _child(pki, urls[1], events, True)}
    try:
        for proc in procs.values():
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 600)
            if line.strip() != b"ready":
                raise RuntimeError(f"ingest process failed to start: {line!r}")
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        out = {}
        for rollups, proc in procs.items():
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 900)
            if not line:
                raise RuntimeError("ingest process failed (see its stderr)")
            out[rollups] = json.loads(line)
        return out
    finally:
        for proc in procs.values():
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()  # a child still waiting for its signal sees the end and stops
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 60)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _round(pki: PkiDir, tmp: str, admin: str | None, events: int, n: int) -> dict[bool, dict[str, float]]:
    """One round on fresh databases of the backend (SQLite files when ``admin`` is None)."""
    if admin is None:
        return await _pair_of_runs(pki, (f"sqlite:///{tmp}/ingest-{n}-off.db", f"sqlite:///{tmp}/ingest-{n}-on.db"),
                                   events)
    async with scratch_postgres(admin) as off, scratch_postgres(admin) as on:
        return await _pair_of_runs(pki, (off, on), events)


async def _ingest_rounds(pki: PkiDir, tmp: str, args: argparse.Namespace, backend: str, admin: str | None
                         ) -> dict[str, float]:
    """Warm-up, then ``--ingest-rounds`` rounds of both variants side by side; medians and ratios."""
    for w in _INGEST_WLS:
        if not pki.has(Identity.wl(w)):
            pki.issue(Identity.wl(w))
    announce(args, f"ingest warm-up ({backend})")
    await _round(pki, tmp, admin, max(2000, args.ingest_events // 4), 0)
    rate: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    ratios = []
    for r in range(max(1, args.ingest_rounds)):
        announce(args, f"ingest round {r + 1}: with and without rollups side by side ({backend})")
        got = await _round(pki, tmp, admin, args.ingest_events, r + 1)
        for rollups, result in got.items():
            rate[rollups].append(result["events_per_s"])
            cpu[rollups].append(result["cp_cpu_s"] * 1e6 / max(1.0, float(result["events"])))
        ratios.append(got[True]["events_per_s"] / got[False]["events_per_s"])
    out: dict[str, float] = {}
    for rollups, key in ((True, "with_rollups"), (False, "without_rollups")):
        out[f"dashboard.ingest.events_per_s.{key}.{backend}"] = round(statistics.median(rate[rollups]), 1)
        out[f"dashboard.ingest.cpu_us_per_event.{key}.{backend}"] = round(statistics.median(cpu[rollups]), 1)
    # A round's two runs go side by side and share the machine's load of the moment: the median of the per-round
    # ratios cancels what a ratio of the two medians would keep of the other work's ups and downs.
    out[f"dashboard.ingest.ratio.{backend}"] = round(statistics.median(ratios), 3)
    # The same comparison from the CP process's CPU per event (verification workers excluded), which the other
    # work of a shared machine moves far less than wall time: without / with, so 1.0 = rollups cost nothing.
    out[f"dashboard.ingest.cpu_ratio.{backend}"] = round(
        statistics.median(cpu[False]) / statistics.median(cpu[True]), 3)
    out[f"dashboard.ingest.ratio_min.{backend}"] = round(min(ratios), 3)
    out[f"dashboard.ingest.ratio_max.{backend}"] = round(max(ratios), 3)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xcwl-bench-dashboard-") as tmp:
        pki = PkiDir(Path(tmp) / "pki")
        pki.init_ca()
        backends = [("sqlite", None)] + ([] if args.skip_postgres else [("postgres", args.pg_admin_dsn)])
        for backend, admin in backends:
            announce(args, f"load {args.events} events' state ({backend})")
            if admin is None:
                url = f"sqlite:///{tmp}/dash.db"
                await _load(url, args)
                announce(args, f"pages ({backend})")
                out.update(await _pages(url, pki, args, backend))
            else:
                async with scratch_postgres(admin) as url:
                    await _load(url, args)
                    announce(args, f"pages ({backend})")
                    out.update(await _pages(url, pki, args, backend))
        out["dashboard.directions"] = args.wls * (args.wls - 1)
        out["dashboard.ingest.rounds"] = max(1, args.ingest_rounds)
        for backend, admin in backends:
            out.update(await _ingest_rounds(pki, tmp, args, backend, admin))
    return out
