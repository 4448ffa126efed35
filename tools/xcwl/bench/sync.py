"""``xcwl bench sync``: first full sync throughput and change-to-visibility delay of the imported catalog.

* Full sync (``sync.full.offers_per_s.{sqlite,postgres}``): 4 exporter nodes hold 25,000 offers each (seeded
  straight into their stores); one importer node, started with a view that lets it import from all four, syncs
  them over mTLS (ListOffers pages of 5,000, one transaction per page, prices converted with the pair's FX).
  Offers per second = offers / wall time from the importer's first view to the last exporter's full sync done.
* Change delay (``sync.change_delay.p50_ms`` / ``p99_ms`` / ``p999_ms``, SQLite; ``….postgres`` too): then 1,000
  offer updates at about 200 per second, spread over the exporters through their ``OfferBook`` (the
  StorefrontService's write path). Delay = the time a row carrying the new revision is committed in the importer's
  snapshot (what its local API reads, uncached) − the time the exporter's commit returned. Observed by polling the
  importer's store.

Layout: the importer node runs in this process; the exporter nodes run together in one child process (this module
with ``--exporter-process``, driven by JSON lines on stdin/stdout), as they would on other machines, so both cores
work. The full-sync figure is the importer's ingest rate; ``sync.full.{importer,exporters}_cpu_s.*`` give the CPU
seconds each process spent on it (on a shared machine the wall figure also measures the neighbours). Change delays
compare ``time.monotonic()`` stamps of the two processes (CLOCK_MONOTONIC: one clock for the whole machine).

Rounds (``--rounds``): after one untimed full sync per variant (into the importer the change rounds watch later), each
variant does ``--rounds`` full syncs, each into a fresh importer, and the updates are split into as many rounds (after
one untimed round of updates per variant; on PostgreSQL a ``CHECKPOINT`` before every round, each full sync's
importer database dropped after its round and the stores still in use vacuumed before the updates, so autovacuum does
not visit bulk-loaded tables in the middle of some round); a figure is the median
over its rounds (``sync.rounds`` says how many), except the change delays' percentiles, which are those of all rounds'
delays pooled (``change_delay.{p50,p99,p999}_ms``). With ``--compare-plaintext`` a second set of exporters stores
personal data unencrypted and runs beside the first; the rounds alternate between the variants (A B, B A, …), so both
see the same machine, and the bench prints every figure twice (``….plaintext``), ``sync.encryption_overhead.<figure>``
(encrypted / plaintext, ratio of medians) and ``sync.encryption_overhead_paired.<figure>`` (the median of same-round
ratios, the steadier one on a shared machine). The feed carries masked contacts computed when an offer is published,
so a sync reads no encrypted column; an offer update seals the manager contact of the offer's trader account on the
exporter.

Every node has the production pipeline and a real store: SQLite files in a temp dir, and scratch PostgreSQL
databases created and dropped through ``--pg-url``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from wl_node.catalog.offers import build_offer
from wl_node.catalog.sync import SyncSettings
from wl_node.catalog.tables import imported_offers, offer_feed, offers, sync_cursors
from wl_node.catalog.validation import ValidOffer
from xcwl.bench.catalog_nodes import CatalogNode, World, pki_at, start_node
from xwl_runtime import db
from xwl_runtime.clock import SystemClock
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir

from ..progress import announce
from ._interleave import PERCENTILES, Interleaved, Round, interleave, percentile
from ._plaintext import PLAINTEXT_SUFFIX, encryption_overhead
from ._scratch import checkpoint, drop_postgres, vacuum_postgres

EXPORTER_PROCESS_FLAG = "--exporter-process"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
IMPORTER = "wl-imp"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``xcwl bench sync``."""
    parser.add_argument("--offers", type=int, default=100_000, help="offers in all, split over the exporters")
    parser.add_argument("--exporters", type=int, default=4, help="exporter nodes")
    parser.add_argument("--changes", type=int, default=1_000, help="offer updates in the change-delay run")
    parser.add_argument("--change-rate", type=float, default=200.0, help="offer updates per second")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help="PostgreSQL server (scratch databases are created and dropped there)")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--rounds", type=int, default=5,
                        help="full syncs per variant (each into a fresh importer), and rounds the offer updates are "
                             "split into; with --compare-plaintext the variants alternate round by round")
    parser.add_argument("--compare-plaintext", action="store_true",
                        help="run every figure a second time with the nodes storing personal data unencrypted "
                             "(<figure>.plaintext) and print sync.encryption_overhead.<figure> = encrypted / "
                             "plaintext")


@contextlib.contextmanager
def _databases(kind: str, tmp: Path, pg_url: str) -> Iterator[Callable[[str], str]]:
    created: list[str] = []
    base = pg_url.rsplit("/", 1)[0]

    def make(name: str) -> str:
        if kind == "sqlite":
            (tmp / kind).mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{tmp / kind / (name + '.db')}"
        db_name = f"xcwl_bench_{uuid.uuid4().hex[:10]}_{name.replace('-', '_')}"
        with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        created.append(db_name)
        return f"{base}/{db_name}"

    try:
        yield make
    finally:
        if created:
            with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
                for db_name in created:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def _seed_rows(exporter: str, count: int, now: dt.datetime) -> list[dict[str, object]]:
    rows = _plain_rows(exporter, count, now)
    for row in rows:
        valid = ValidOffer(
            offer_id=str(row["offer_id"]), title=str(row["title"]), description=str(row["description"]),
            category=str(row["category"]), currency=str(row["currency"]), unit_price=Decimal(str(row["unit_price"])),
            stock=int(str(row["stock"])), image_urls=tuple(json.loads(str(row["image_urls"]))),
            manager_name=str(row["manager_name"]), manager_email=str(row["manager_email"]),
            manager_phone=str(row["manager_phone"]),
        )
        row["payload"] = build_offer(valid, exporter_wl=exporter, revision=1, created_at=now,
                                     updated_at=now).SerializeToString()
    return rows


def _plain_rows(exporter: str, count: int, now: dt.datetime) -> list[dict[str, object]]:
    rng = random.Random(exporter)
    return [
        {"offer_id": f"{exporter}-{i:06d}", "title": f"Offer {i} of {exporter}",
         "description": "Industrial supplies, delivered within the week. " * 3, "category": f"cat-{i % 40}",
         "currency": f"XPY-{exporter[-1].upper()}", "unit_price": f"{rng.randint(100, 1_000_000) / 100:.2f}",
         "stock": rng.randint(0, 500), "image_urls": json.dumps([f"https://img.example.com/{exporter}/{i}.jpg"]),
         "manager_name": "Trader Manager", "manager_email": f"manager@{exporter}.example.com",
         "manager_phone": "+55 11 91234-4321", "revision": 1, "change_sequence": i + 1, "withdrawn": False,
         "created_at": now, "updated_at": now}
        for i in range(count)
    ]


async def _seed(node: CatalogNode, count: int) -> None:
    rows = _seed_rows(node.wl_id, count, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    async with node.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            await conn.execute(sa.insert(offers), rows[start:start + 5000])
        await conn.execute(sa.update(offer_feed).where(offer_feed.c.feed_id == 1).values(last_sequence=count))


def _reader(node: CatalogNode) -> AsyncEngine:
    """A read-only engine on the node's store without the node's BEGIN IMMEDIATE: the bench's polling must not take
    SQLite's write lock away from the sync job it measures (WAL lets readers run beside the writer)."""
    return create_async_engine(db.async_url(node.settings.db_url), pool_size=2, max_overflow=0)


async def _all_synced(reader: AsyncEngine, exporters: list[str]) -> bool:
    async with reader.connect() as conn:
        done = (await conn.execute(
            sa.select(sync_cursors.c.exporter_wl).where(sync_cursors.c.full_sync.is_(False))
        )).scalars().all()
    return set(done) >= set(exporters)


async def _count(reader: AsyncEngine) -> int:
    async with reader.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(imported_offers)) or 0)


def _currency(wl: str) -> str:
    return f"XPY-{wl[-1].upper()}"


def _set_pairs(world: World, exporters: list[str]) -> None:
    for i, wl in enumerate(exporters):
        pair = world.pair(IMPORTER, wl, fx_rate=f"1.{2345 + i}", fx_version=1)
        pair.direction(IMPORTER, wl).import_enabled = False  # exporters import nothing back


async def _produce(world: World, exporters: list[str], per_exporter: int, changes: int, rate: float,
                   committed: Callable[[str, int, float], None], rng: random.Random,
                   revisions: dict[str, int]) -> None:
    """``changes`` offer updates at ``rate``/s through the exporters' ``OfferBook``; ``committed(imported id,
    revision, time.monotonic() when the commit returned)`` after each. ``rng`` and ``revisions`` (offer id → its
    latest revision) live as long as the exporters: a later batch continues where the last one stopped."""
    interval = 1.0 / rate
    started = time.monotonic()
    for n in range(changes):
        exporter = rng.choice(exporters)
        node = world.nodes[exporter]
        offer_id = f"{exporter}-{rng.randrange(per_exporter):06d}"
        revision = revisions.get(offer_id, 1) + 1
        revisions[offer_id] = revision
        valid = ValidOffer(
            offer_id=offer_id, title=f"Changed {n}", description="Updated", category="cat-1",
            currency=_currency(exporter), unit_price=Decimal("12.34"),
            stock=7, image_urls=(), manager_name="Trader Manager",
            manager_email=f"manager@{exporter}.example.com", manager_phone="+55 11 91234-4321",
        )
        await node.catalog.book.update(valid)
        committed(f"{exporter}:{offer_id}", revision, time.monotonic())
        await asyncio.sleep(max(0.0, started + (n + 1) * interval - time.monotonic()))


async def _exporter_process() -> None:
    """The child process: serve the exporters (spec: one JSON line on stdin), then obey commands on stdin.

    Protocol (JSON lines): the parent sends ``{"pki", "exporters": {wl: db_url}, "per_exporter"}``; the child seeds,
    serves and answers ``{"endpoints": {wl: host:port}}``; then ``{"cmd": "changes", "changes", "rate"}`` streams
    one ``{"id", "rev", "t"}`` per committed update and ``{"done": true}``; ``{"cmd": "stop"}`` (or EOF) ends it.
    """
    out = sys.stdout
    sys.stdout = sys.stderr  # the protocol owns stdout

    def send(message: dict[str, object]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    spec = json.loads(await asyncio.to_thread(sys.stdin.readline))
    exporters: list[str] = list(spec["exporters"])
    per_exporter = int(spec["per_exporter"])
    pki = pki_at(Path(spec["pki"]))
    world = World()
    try:
        for wl in exporters:
            node = await start_node(wl, spec["exporters"][wl], pki, run_loops=False,
                                    plaintext=bool(spec.get("plaintext")))
            world.add_wl(node, _currency(wl), 2)
            await _seed(node, per_exporter)
        world.add_remote_wl(IMPORTER, "127.0.0.1:1", "XPY-I", 2)
        _set_pairs(world, exporters)
        await world.publish()
        send({"endpoints": {wl: world.nodes[wl].endpoint for wl in exporters}})
        rng, revisions = random.Random(7), dict[str, int]()
        while line := await asyncio.to_thread(sys.stdin.readline):
            command = json.loads(line)
            if command["cmd"] == "stop":
                break
            if command["cmd"] == "cpu":
                send({"cpu": time.process_time()})
                continue
            await _produce(world, exporters, per_exporter, int(command["changes"]), float(command["rate"]),
                           lambda imported, rev, t: send({"id": imported, "rev": rev, "t": t}), rng, revisions)
            send({"done": True})
    finally:
        await world.close()


class _ExporterProcess:
    """The parent's handle on the child process serving the exporters."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, pki: Path, dbs: dict[str, str], per_exporter: int,
                    plaintext: bool) -> tuple[_ExporterProcess, dict[str, str]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "xcwl.bench.sync", EXPORTER_PROCESS_FLAG,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20,
        )
        child = cls(proc)
        try:
            await child.send({"pki": str(pki), "exporters": dbs, "per_exporter": per_exporter,
                              "plaintext": plaintext})
            endpoints = (await child.receive())["endpoints"]
        except BaseException:
            await child.stop()
            raise
        return child, dict(endpoints)

    async def send(self, message: dict[str, object]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the exporter process ended (exit code {await self.proc.wait()})")
        message: dict[str, Any] = json.loads(line)
        return message

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.send({"cmd": "stop"})
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def _change_delays(importer: CatalogNode, exporters: _ExporterProcess, changes: int,
                         rate: float) -> list[float]:
    reader = _reader(importer)
    pending: dict[str, tuple[int, float]] = {}
    delays: list[float] = []
    produced = asyncio.Event()

    async def produce() -> None:
        await exporters.send({"cmd": "changes", "changes": changes, "rate": rate})
        while not (message := await exporters.receive()).get("done"):
            pending[message["id"]] = (int(message["rev"]), float(message["t"]))
        produced.set()

    async def observe() -> None:
        t = imported_offers.c
        while not produced.is_set() or pending:
            if pending:
                ids = list(pending)
                async with reader.connect() as conn:
                    seen = (await conn.execute(sa.select(t.imported_offer_id, t.source_revision)
                                               .where(t.imported_offer_id.in_(ids)))).all()
                now = time.monotonic()
                for imported_id, revision in seen:
                    want = pending.get(imported_id)
                    if want is not None and revision >= want[0]:
                        delays.append(now - want[1])
                        del pending[imported_id]
            await asyncio.sleep(0.002)

    try:
        await asyncio.wait_for(asyncio.gather(produce(), observe()), timeout=changes / rate + 60)
    finally:
        await reader.dispose()
    return delays


class _Variant:
    """One variant's exporters (a child process, seeded once) and the way to start importers against them."""

    def __init__(self, name: str, pki: PkiDir, child: _ExporterProcess, endpoints: dict[str, str],
                 exporters: list[str], plaintext: bool, stores: list[str]) -> None:
        self.name, self.pki, self.child, self.endpoints = name, pki, child, endpoints
        self.exporters, self.plaintext = exporters, plaintext
        self.stores = stores
        """The exporters' store URLs."""
        self.importers = 0

    @classmethod
    async def start(cls, name: str, tmp: Path, make_db: Callable[[str], str], args: argparse.Namespace,
                    plaintext: bool) -> _Variant:
        exporters = [f"wl-e{i}" for i in range(args.exporters)]
        pki = pki_at(tmp / name / "pki")
        for wl in (*exporters, IMPORTER):  # issued here so the two processes never race on the PKI directory
            if not pki.has(Identity.wl(wl)):
                pki.issue(Identity.wl(wl))
        dbs = {wl: make_db(f"{name}-{wl}") for wl in exporters}
        child, endpoints = await _ExporterProcess.start(pki.root, dbs, args.offers // args.exporters, plaintext)
        return cls(name, pki, child, endpoints, exporters, plaintext, list(dbs.values()))

    async def importer(self, make_db: Callable[[str], str]) -> tuple[World, CatalogNode]:
        """A fresh importer node (a new, empty store) with its view published, loops not started yet."""
        self.importers += 1
        settings = SyncSettings(page_size=5000, poll_interval_s=1.0)
        world = World()
        try:
            node = await start_node(IMPORTER, make_db(f"{self.name}-imp{self.importers}"), self.pki,
                                    sync_settings=settings, run_loops=False, clock=SystemClock(),
                                    plaintext=self.plaintext)
            world.add_wl(node, "XPY-I", 2)
            for wl in self.exporters:
                world.add_remote_wl(wl, self.endpoints[wl], _currency(wl), 2)
            _set_pairs(world, self.exporters)
            await world.publish()
        except BaseException:
            await world.close()
            raise
        return world, node

    async def exporters_cpu(self) -> float:
        await self.child.send({"cmd": "cpu"})
        return float((await self.child.receive())["cpu"])


async def _full_sync(variant: _Variant, make_db: Callable[[str], str], total: int, keep: bool = False,
                     discard: Callable[[str], Awaitable[None]] | None = None
                     ) -> tuple[dict[str, float], tuple[World, CatalogNode] | None]:
    """One full sync into a fresh importer: its figures (and the running importer when ``keep``; otherwise its store
    goes to ``discard`` once closed)."""
    world, importer = await variant.importer(make_db)
    try:
        reader = _reader(importer)
        try:
            child_cpu = await variant.exporters_cpu()
            cpu = time.process_time()
            started = time.perf_counter()
            importer.start_loops()
            while not await _all_synced(reader, variant.exporters):  # noqa: ASYNC110 - polling the store is the point
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            child_cpu = await variant.exporters_cpu() - child_cpu
            count = await _count(reader)
        finally:
            await reader.dispose()
        if count != total:
            raise RuntimeError(f"full sync imported {count} offers, expected {total}")
    except BaseException:
        await world.close()
        raise
    # CPU time beside wall time: on a loaded machine the wall figure measures the neighbours too.
    figures = {"full.offers_per_s": round(total / elapsed, 1), "full.seconds": round(elapsed, 3),
               "full.importer_cpu_s": round(cpu, 3), "full.exporters_cpu_s": round(child_cpu, 3)}
    if keep:
        return figures, (world, importer)
    await world.close()
    if discard is not None:
        await discard(importer.settings.db_url)
    return figures, None


async def _measure(kind: str, args: argparse.Namespace, tmp: Path
                   ) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Every variant's figures (variant → figure → median over its rounds), the variants interleaved; with
    ``--compare-plaintext`` also figure → median of the same-round ratios encrypted / plaintext."""
    names = ["encrypted", *(["plaintext"] if args.compare_plaintext else [])]
    total = args.offers // args.exporters * args.exporters
    variants: dict[str, _Variant] = {}
    importers: dict[str, tuple[World, CatalogNode]] = {}
    with _databases(kind, tmp, args.pg_url) as make_db:
        try:
            for name in names:
                variants[name] = await _Variant.start(name, tmp / kind, make_db, args, plaintext=name == "plaintext")

            # First, untimed, one full sync per variant into the importer the change rounds will watch: it warms
            # up this process (imports, first connections), which would otherwise spoil the first timed round.
            for name in names:
                _, kept = await _full_sync(variants[name], make_db, total, keep=True)
                assert kept is not None
                importers[name] = kept

            postgres = kind == "postgres"

            async def drop(url: str) -> None:
                await drop_postgres(args.pg_url, url)

            async def full_round(name: str) -> dict[str, float]:
                figures, _ = await _full_sync(variants[name], make_db, total, discard=drop if postgres else None)
                return figures

            settle = (lambda: checkpoint(args.pg_url)) if postgres else None
            full = await interleave(names, args.rounds, full_round, settle)
            out = {name: full.medians(name) for name in names}
            paired = _paired(full) if args.compare_plaintext else {}
            if args.changes:
                most: dict[str, float] = {}
                per_round = max(1, args.changes // args.rounds)

                async def change_round(name: str) -> Round:
                    delays = await _change_delays(importers[name][1], variants[name].child, per_round,
                                                  args.change_rate)
                    most[name] = max(most.get(name, 0.0), max(delays))
                    ms = [d * 1000 for d in delays]
                    return Round({f"change_delay.{name}_ms": round(percentile(ms, q), 2) for q, name in PERCENTILES},
                                 {"change_delay": ms})

                # One untimed round per variant first: the full syncs just wrote every importer's catalog many times
                # over, and the store's write-back of that (a PostgreSQL checkpoint, SQLite's WAL) would otherwise
                # land on whichever variant's changes come first. On PostgreSQL every store still in use is
                # vacuumed before it: autovacuum would visit the bulk-loaded tables in the middle of some round.
                if postgres:
                    await vacuum_postgres([*(node.settings.db_url for _, node in importers.values()),
                                           *(url for v in variants.values() for url in v.stores)])
                for name in names:
                    await _change_delays(importers[name][1], variants[name].child, per_round, args.change_rate)
                changed = await interleave(names, args.rounds, change_round, settle)
                for name in names:
                    out[name].update(changed.medians(name))
                    out[name]["change_delay.max_ms"] = round(most[name] * 1000, 2)
                if args.compare_plaintext:
                    paired.update(_paired(changed))
            return out, paired
        finally:
            for world, _ in importers.values():  # the importers first: their sync loops must not see exporters go
                await world.close()
            for variant in variants.values():
                await variant.child.stop()


def _paired(runs: Interleaved) -> dict[str, float]:
    return {name: runs.paired_ratio(name, "encrypted", "plaintext") for name in runs.medians("encrypted")}


def _named(figures: dict[str, float], kind: str, suffix: str = "", prefix: str = "sync.") -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in figures.items():
        if name.startswith("change_delay."):
            out[f"{prefix}{name}{'' if kind == 'sqlite' else '.' + kind}{suffix}"] = value
        else:
            out[f"{prefix}{name}.{kind}{suffix}"] = value
    return out


async def run(args: argparse.Namespace) -> dict[str, float]:
    """Run the benchmark; returns a flat mapping of figure names to numbers."""
    results: dict[str, float] = {"sync.rounds": float(args.rounds)}
    with tempfile.TemporaryDirectory(prefix="xcwl-bench-sync-") as tmp:
        kinds = ["sqlite"] if args.skip_postgres else ["sqlite", "postgres"]
        for kind in kinds:
            announce(args, kind + (": encrypted and plaintext, interleaved" if args.compare_plaintext else ""))
            by_variant, paired = await _measure(kind, args, Path(tmp))
            results.update(_named(by_variant["encrypted"], kind))
            if "plaintext" in by_variant:
                results.update(_named(by_variant["plaintext"], kind, PLAINTEXT_SUFFIX))
                results.update(_named(paired, kind, prefix="sync.encryption_overhead_paired."))
    if args.compare_plaintext:
        results.update(encryption_overhead(results, "sync"))
    return results


def main() -> None:
    """``python -m xcwl.bench.sync [flags]``: as ``xcwl bench sync``; the bench itself runs this module as its
    exporter process with ``--exporter-process``."""
    if sys.argv[1:] == [EXPORTER_PROCESS_FLAG]:
        asyncio.run(_exporter_process())
        return
    parser = argparse.ArgumentParser(prog="python -m xcwl.bench.sync")
    parser.add_argument("--json", action="store_true", help="print one flat JSON object of figure names to numbers")
    add_arguments(parser)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(json.dumps(figures, sort_keys=True) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
