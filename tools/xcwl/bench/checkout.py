"""``xcwl bench checkout``: cross-WL checkout latency and throughput, with a same-run baseline.

Set-up per backend (SQLite in a temp dir; a scratch PostgreSQL database per node through ``--pg-admin-dsn``):
an exporter node (order desk, mTLS, JWT verification against the policy view's keys, the local imbalance guard's
``DeskGuard`` with its upkeep loop, durable commits) and an importer node (Checkout on its local API, the local
imbalance guard's reservation per checkout, trader client with deadline/retries/breaker/bulkhead, reconciler and
compensation outbox running, durable commits), each in its OWN process with the production server pipeline on
loopback. The bench process is only the app client (app certificate) driving Checkout at 1 and at 64 in flight, so
the client never competes with a server for one interpreter. The importer's token cache is filled up front (the CP
is not on the checkout path). On a 2-core machine the three processes share the two cores, as the baseline's two do.

Comparisons are made inside one run (``_interleave``): every variant's node pair is started at once (the encrypted
pair always; the plaintext pair with ``--compare-plaintext``; the observed pair on SQLite), then each level's
checkouts are measured in ``--rounds`` short rounds per variant, alternating A B, B A, … after a warm-up of each
(every store settled before each round: ``VACUUM (ANALYZE)`` and ``CHECKPOINT`` on PostgreSQL, the WAL truncated on
SQLite). Throughput,
error rate and CPU are the median of the variant's per-round figures; latency percentiles are those of all its rounds'
samples pooled (every round the same number of checkouts); a ratio is the ratio of those figures, and ``…_paired`` the
median of same-round ratios (per-round percentiles). Run one after the other, two identical runs differed by ±30%
here.

Figures (``--json`` prints one flat object):

* ``checkout.confirm.{p50,p99,p999}_ms.c{N}.{backend}``: the exporter confirmation as the importer sees it (the
  PlaceOrder call including retries, from the trader client; the wait for a bulkhead slot before it sends nothing
  and is counted in e2e only);
* ``checkout.e2e.{p50,p99,p999}_ms.c{N}.{backend}``: the whole Checkout as the app sees it;
* ``checkout.checkouts_per_s.c{N}.{backend}``: completed checkouts per second of wall time;
* ``checkout.error_rate.c{N}.{backend}``: share of checkouts that did not complete (errors and non-COMPLETED);
* ``checkout.cpu_ms_per_checkout.{client,importer,exporter}.c{N}.{backend}``: CPU time (user+system, all threads)
  per checkout of each process: unlike latencies, comparable between runs on a shared, loaded machine;
* with ``--compare-plaintext``: every checkout figure again as ``….{backend}.plaintext`` from a pair that stores
  the buyer reference unencrypted, ``checkout.encryption_overhead.<figure>`` (encrypted / plaintext, ratio of
  medians) and ``checkout.encryption_overhead_paired.<figure>`` (throughput, confirmation p99, node CPU);
* ``checkout.observability.throughput_ratio`` and ``checkout.observability.p99_ratio`` (SQLite, 64 in flight): a
  pair with tracing exported over OTLP (to a span sink in the bench process; sampler
  ``checkout.observability.trace_sample_ratio``: ``parentbased_traceidratio``, ``parentbased_always_on`` at 1),
  the RPC metrics interceptors on and both ``/metrics`` scraped every ``scrape_interval_s`` while it is measured,
  against the encrypted pair of the same run: checkouts per second observed / plain and confirmation p99 observed /
  plain, with ``…_paired``, ``e2e_p99_ratio``, ``cpu_ratio.{importer,exporter}`` and ``spans_exported``;
* ``checkout.baseline.{p50,p99}_ms.c{N}.{backend}`` and ``checkout.baseline.calls_per_s.c{N}.{backend}``: a bare
  mTLS unary RPC (same pipeline) that verifies a JWT and commits one INSERT through the same durable store path
  (server in a child process, client in the bench process), with ``checkout.baseline.cpu_ms_per_call.*``;
* ``checkout.rounds``: the rounds per variant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf import duration_pb2

from cp_server.identity.signing import verification_keys
from wl_node.authz import TABLE as NODE_AUTHZ
from wl_node.catalog.feed import FeedNotifier
from wl_node.checkout.component import CheckoutConfig
from wl_node.checkout.component import install as install_checkout
from wl_node.checkout.offers import ImportedOfferTerms
from wl_node.context import NodeContext
from wl_node.orders.component import install as install_orders
from wl_node.orders.rpc import policy_token_verifier
from wl_node.orders.stock import SqlOfferStock
from wl_node.orders.txn import TxRunner
from wl_node.peers.client import PeerConfig
from wl_node.peers.component import install as install_peers
from wl_node.policy.state import PolicyState
from wl_node.privacy.accounts import TraderAccounts
from wl_node.risk.ledger_view import DeskGuard
from wl_node.risk.local_guard import LocalGuard
from wl_node.settings import NodeSettings
from wl_node.store import migrate
from wl_node.trader.component import install as install_trader
from xcwl.bench._scratch import checkpoint, checkpoint_sqlite, scratch_postgres, vacuum_postgres
from xcwl.bench.importer_node import StaticImportedOffers, checkout_storefront
from xporty.cp.v1 import policy_pb2, registry_pb2
from xporty.node.v1 import storefront_pb2
from xporty.node.v1 import storefront_service_pb2 as sf_pb
from xporty.node.v1 import storefront_service_pb2_grpc as sf_grpc
from xwl_runtime import db, tracing
from xwl_runtime.authz import Rule, table
from xwl_runtime.clock import SystemClock
from xwl_runtime.fieldcrypt import PlaintextKeyring
from xwl_runtime.identity import Identity, Kind
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.metrics import RpcMetrics, serve_metrics
from xwl_runtime.pipeline import caller
from xwl_runtime.pki import PkiDir, key_to_pem, load_key, new_private_key
from xwl_runtime.server import Listener, start_server
from xwl_runtime.sqltypes import UtcDateTime
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial, secure_channel
from xwl_runtime.tokens import SCOPE_PLACE_ORDERS, bearer_metadata, issue_token

from ..progress import announce
from ._interleave import PERCENTILES, Interleaved, Round, interleave, percentile
from ._observed import SCRAPE_INTERVAL_S, Scraper, SpanSink, enable_tracing
from ._plaintext import PLAINTEXT_SUFFIX, encryption_overhead

DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
EXPORTER, IMPORTER, APP = "wl-a", "wl-b", "bench"
OFFERS = 16
PRICE = Decimal("10.00")
FX = Decimal("2.5")
BASELINE_METHOD = "/xcwl.bench.v1.Baseline/Insert"
PAIRED_FIGURES = ("checkouts_per_s", "confirm.p99_ms", "cpu_ms_per_checkout.importer", "cpu_ms_per_checkout.exporter")
"""Figures whose same-round ratio (``…_paired``) the bench prints beside the ratio of medians."""

_meta = sa.MetaData()
bench_offers = sa.Table(
    "bench_offers", _meta,
    sa.Column("offer_id", sa.String(128), primary_key=True),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("unit_price", sa.String(40), nullable=False),
    sa.Column("stock", sa.BigInteger, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=False),
)
bench_baseline = sa.Table(
    "bench_baseline", _meta,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("caller", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``xcwl bench checkout``."""
    parser.add_argument("--checkouts-c1", type=int, default=600, help="checkouts measured at 1 in flight")
    parser.add_argument("--checkouts-c64", type=int, default=3000, help="checkouts measured at 64 in flight")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured checkouts before each level")
    parser.add_argument("--order-timeout-ms", type=float, default=300.0, help="PlaceOrder deadline")
    parser.add_argument("--pg-admin-dsn", default=os.environ.get("XCWL_BENCH_PG_DSN", DEFAULT_PG_ADMIN),
                        help="PostgreSQL server where scratch databases are created")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--compare-plaintext", action="store_true",
                        help="run the checkout figures a second time with personal data stored unencrypted "
                             "(<figure>.plaintext) and print checkout.encryption_overhead.<figure> = encrypted / "
                             "plaintext")
    parser.add_argument("--rounds", type=int, default=10,
                        help="rounds per variant: the checkouts of a level are measured in this many short rounds, "
                             "alternating between the variants (encrypted, plaintext, observed)")
    parser.add_argument("--trace-sample-ratio", type=float, default=0.1,
                        help="the observed nodes' sampler: parentbased_always_on at 1.0, else "
                             "parentbased_traceidratio with this ratio (OTEL_TRACES_SAMPLER[_ARG])")


def _view(wl_id: str, peer: str, endpoint: str, jwt_key: Any) -> policy_pb2.PolicyView:
    view = policy_pb2.PolicyView(wl_id=wl_id, version=1)
    for w in (wl_id, peer):
        view.white_labels.append(registry_pb2.WhiteLabel(
            wl_id=w, name=w, currency=f"XPY-{w[-1].upper()}", currency_decimals=2, reference_rate="1",
            trader_endpoint=endpoint if w == EXPORTER else "127.0.0.1:1"))
    a, b = sorted((wl_id, peer))
    view.pairs.append(policy_pb2.PairPolicy(
        wl_a=a, wl_b=b, status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, imbalance_limit="1000000000",
        fx_rate=str(FX), fx_version=1, changed_version=1,
        directions=[policy_pb2.DirectionPolicy(exporter_wl=x, importer_wl=y, import_enabled=True,
                                               destination_visible=True, export_delay=duration_pb2.Duration())
                    for x, y in ((a, b), (b, a))]))
    view.token_keys.extend(verification_keys(jwt_key))
    return view


def _ctx(wl_id: str, url: str, pki: PkiDir, material: TlsMaterial) -> NodeContext:
    settings = NodeSettings(wl_id=wl_id, pki_dir=pki.root, cp_target="127.0.0.1:1", db_url=url)
    return NodeContext(settings=settings, engine=db.create_engine(url), clock=SystemClock(), tls=material)


def _material(pki: PkiDir, identity: Identity) -> TlsMaterial:
    if not pki.has(identity):
        pki.issue(identity)
    return TlsMaterial.from_pki(pki, identity)


async def _prepare(url: str) -> None:
    await asyncio.to_thread(migrate, url)
    engine = sa.create_engine(db.sync_url(url))
    try:
        with engine.begin() as conn:
            _meta.create_all(conn)
    finally:
        engine.dispose()


async def _drive(n: int, concurrency: int, one: Callable[[int], Awaitable[bool]]) -> tuple[float, int]:
    """Run ``one(i)`` for i < n with ``concurrency`` workers; returns (wall seconds, failures)."""
    counter = iter(range(n))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for i in counter:
            if not await one(i):
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, failures


class _Pair:
    """One exporter node and one importer node (each in its own process) and the app's channel to the importer."""

    def __init__(self, variant: str, exporter: _Child, importer: _Child, channel: grpc.aio.Channel,
                 scraper: Scraper | None) -> None:
        self.variant = variant
        self._exporter, self._importer = exporter, importer
        self._channel = channel
        self._stub = sf_grpc.StorefrontServiceStub(channel)
        self._scraper = scraper
        self._e2e_ms: list[float] = []
        self._run_id = ""

    @classmethod
    async def start(cls, variant: str, pki: PkiDir, exp_url: str, imp_url: str, args: argparse.Namespace,
                    jwt_key: Any, *, plaintext: bool = False, otlp_port: int | None = None) -> _Pair:
        """``plaintext``: the importer stores the buyer reference as given; ``otlp_port``: both nodes export their
        spans there and serve ``/metrics``, scraped once a second while this pair is measured."""
        await _prepare(exp_url)
        await _prepare(imp_url)
        observed: dict[str, Any] = {} if otlp_port is None else {
            "observe": True, "otlp_port": otlp_port, "sample_ratio": args.trace_sample_ratio}
        exporter = await _Child.start("exporter", pki.root, exp_url, key_to_pem(jwt_key), dict(observed))
        try:
            # The importer node in a process of its own too: the app client must not share its interpreter.
            importer = await _Child.start("importer", pki.root, imp_url, key_to_pem(jwt_key),
                                          {"exporter_port": exporter.port, "order_timeout_ms": args.order_timeout_ms,
                                           "plaintext": plaintext, **observed})
        except BaseException:
            await exporter.stop()
            raise
        scraper = None
        if otlp_port is not None:
            ports = [await importer.ask("metrics_port"), await exporter.ask("metrics_port")]
            scraper = Scraper([port for port in ports if port])
            scraper.start()
        channel = secure_channel(f"127.0.0.1:{importer.port}", _material(pki, Identity.app(IMPORTER, APP)),
                                 expected=Identity.wl(IMPORTER))
        return cls(variant, exporter, importer, channel, scraper)

    async def _one(self, i: int, record: bool = True) -> bool:
        req = sf_pb.CheckoutRequest(idempotency_key=f"{self._run_id}-{i}", quantity=1,
                                    imported_offer_id=f"{EXPORTER}:o{i % OFFERS}", buyer_reference=f"member-{i % 97}")
        t0 = time.perf_counter()
        try:
            resp: sf_pb.CheckoutResponse = await self._stub.Checkout(req, timeout=10)
        except grpc.aio.AioRpcError:
            return False
        if record:
            self._e2e_ms.append((time.perf_counter() - t0) * 1000)
        return resp.checkout.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED

    async def warm(self, level: int, n: int) -> None:
        """Unmeasured checkouts (connections, caches, the JIT-less interpreter's first paths)."""
        self._run_id = uuid.uuid4().hex[:8]
        await _drive(n, level, lambda i: self._one(i, record=False))

    async def measure(self, level: int, n: int) -> Round:
        """One round: ``n`` checkouts at ``level`` in flight; figure names without the ``checkout.`` prefix and the
        level/backend suffix, and the round's confirmation and end-to-end samples (pooled over the rounds)."""
        self._run_id = uuid.uuid4().hex[:8]
        await self._importer.ask("clear")
        self._e2e_ms.clear()
        if self._scraper is not None:
            self._scraper.resume()
        cpu0 = (time.process_time(), await self._importer.ask("cpu"), await self._exporter.ask("cpu"))
        wall, failures = await _drive(n, level, self._one)
        if self._scraper is not None:
            self._scraper.pause()
            # The spans still batched are exported now, outside the wall time but inside the CPU time.
            await self._importer.ask("flush")
            await self._exporter.ask("flush")
        cpu1 = (time.process_time(), await self._importer.ask("cpu"), await self._exporter.ask("cpu"))
        confirm_ms: list[float] = await self._importer.ask("samples")
        out: dict[str, float] = {}
        # CPU time per checkout of each process: comparable across runs on a shared, loaded machine.
        for name, a, b in zip(("client", "importer", "exporter"), cpu0, cpu1, strict=True):
            out[f"cpu_ms_per_checkout.{name}"] = round((b - a) * 1000 / n, 3)
        for q, name in PERCENTILES:
            out[f"confirm.{name}_ms"] = round(percentile(confirm_ms, q), 3)
            out[f"e2e.{name}_ms"] = round(percentile(self._e2e_ms, q), 3)
        out["checkouts_per_s"] = round((n - failures) / wall, 1)
        out["error_rate"] = round(failures / n, 5)
        return Round(out, {"confirm": list(confirm_ms), "e2e": list(self._e2e_ms)})

    async def stop(self) -> None:
        await self._channel.close()
        if self._scraper is not None:
            await self._scraper.stop()
        await self._importer.stop()
        await self._exporter.stop()


async def _run_levels(pairs: dict[str, _Pair], levels: Sequence[tuple[int, int, Sequence[str]]],
                      args: argparse.Namespace, stores: list[str]) -> dict[int, Interleaved]:
    """Per level (in flight, checkouts per variant, variants measured): the variants interleaved in ``--rounds``
    rounds of ``checkouts / rounds`` each; every store settled before each round (PostgreSQL: ``VACUUM (ANALYZE)``
    then a ``CHECKPOINT``, so neither autovacuum nor the periodic write-back lands inside one variant's round; SQLite:
    the WAL truncated)."""
    sqlite = [url for url in stores if db.is_sqlite(url)]
    postgres = [url for url in stores if not db.is_sqlite(url)]

    async def settle() -> None:
        if sqlite:
            await checkpoint_sqlite(sqlite)
        if postgres:
            await vacuum_postgres(postgres)
            await checkpoint(args.pg_admin_dsn)

    out: dict[int, Interleaved] = {}
    for level, n, variants in levels:
        announce(args, f"{len(variants)} variant(s) at {level} in flight")
        for variant in variants:
            await pairs[variant].warm(level, args.warmup)
        per_round = max(1, n // args.rounds)

        def measure(variant: str, level: int = level, n: int = per_round) -> Awaitable[Round]:
            return pairs[variant].measure(level, n)

        out[level] = await interleave(variants, args.rounds, measure, settle)
    return out


def _named(figures: dict[str, float], key: str, suffix: str = "") -> dict[str, float]:
    return {f"checkout.{name}.{key}{suffix}": value for name, value in figures.items()}


async def _checkout_figures(pki: PkiDir, url: Callable[[str, str], Awaitable[str]], backend: str,
                            args: argparse.Namespace, jwt_key: Any, *, observe: bool) -> dict[str, float]:
    """The checkout figures of one backend (``url(variant, node)`` makes each node's store): the encrypted
    nodes always; with ``--compare-plaintext`` a plaintext pair interleaved with them (``….plaintext``); with
    ``observe`` an observed pair interleaved at 64 in flight (``checkout.observability.*``)."""
    pairs: dict[str, _Pair] = {}
    sink: SpanSink | None = None
    stores: list[str] = []

    async def store(variant: str, node: str) -> str:
        stores.append(await url(variant, node))
        return stores[-1]

    try:
        variants = ["encrypted", *(["plaintext"] if args.compare_plaintext else [])]
        for variant in variants:
            pairs[variant] = await _Pair.start(variant, pki, await store(variant, "exporter"),
                                               await store(variant, "importer"), args, jwt_key,
                                               plaintext=variant == "plaintext")
        if observe:
            sink = SpanSink()
            await sink.start()
            pairs["observed"] = await _Pair.start("observed", pki, await store("observed", "exporter"),
                                                  await store("observed", "importer"), args, jwt_key,
                                                  otlp_port=sink.port)
        measured = await _run_levels(pairs, (
            (1, args.checkouts_c1, variants),
            (64, args.checkouts_c64, [*variants, *(["observed"] if observe else [])]),
        ), args, stores)
    finally:
        for pair in pairs.values():
            await pair.stop()
        if sink is not None:  # last: the children flush their spans to it when they stop
            await sink.stop()
    out: dict[str, float] = {}
    for level, runs in measured.items():
        key = f"c{level}.{backend}"
        out.update(_named(runs.medians("encrypted"), key))
        if "plaintext" in runs.rounds:
            out.update(_named(runs.medians("plaintext"), key, PLAINTEXT_SUFFIX))
            for figure in PAIRED_FIGURES:
                out[f"checkout.encryption_overhead_paired.{figure}.{key}"] = runs.paired_ratio(
                    figure, "encrypted", "plaintext")
    if observe:
        out.update(_observability(measured[64], args, sink))
    return out


def _observability(runs: Interleaved, args: argparse.Namespace, sink: SpanSink | None) -> dict[str, float]:
    """Observed nodes vs the same run's plain encrypted nodes, 64 in flight, medians of interleaved rounds."""
    plain, seen = runs.medians("encrypted"), runs.medians("observed")
    out = {
        "checkout.observability.throughput_ratio": runs.ratio("checkouts_per_s", "observed", "encrypted"),
        "checkout.observability.p99_ratio": runs.ratio("confirm.p99_ms", "observed", "encrypted"),
        "checkout.observability.e2e_p99_ratio": runs.ratio("e2e.p99_ms", "observed", "encrypted"),
        "checkout.observability.throughput_ratio_paired": runs.paired_ratio("checkouts_per_s", "observed",
                                                                            "encrypted"),
        "checkout.observability.p99_ratio_paired": runs.paired_ratio("confirm.p99_ms", "observed", "encrypted"),
        "checkout.observability.checkouts_per_s.plain": plain["checkouts_per_s"],
        "checkout.observability.checkouts_per_s.observed": seen["checkouts_per_s"],
        "checkout.observability.confirm_p99_ms.plain": plain["confirm.p99_ms"],
        "checkout.observability.confirm_p99_ms.observed": seen["confirm.p99_ms"],
        "checkout.observability.trace_sample_ratio": args.trace_sample_ratio,
        "checkout.observability.scrape_interval_s": SCRAPE_INTERVAL_S,
        "checkout.observability.spans_exported": float(sink.spans if sink is not None else 0),
    }
    for node in ("importer", "exporter"):
        out[f"checkout.observability.cpu_ratio.{node}"] = runs.ratio(f"cpu_ms_per_checkout.{node}", "observed",
                                                                     "encrypted")
    return out


async def _serve_importer(pki: PkiDir, url: str, jwt_key: Any, options: dict[str, Any]
                          ) -> tuple[Lifecycle, Callable[[str], Any]]:
    """The importer node: Checkout on its local API, trader client to the exporter child, token cache filled."""
    clock = SystemClock()
    imp_mat = _material(pki, Identity.wl(IMPORTER))
    imp_ctx = _ctx(IMPORTER, url, pki, imp_mat)
    if options.get("plaintext"):  # --compare-plaintext: the same run with the buyer reference stored as given
        imp_ctx.keyring = PlaintextKeyring()
    imp_state = PolicyState(IMPORTER, clock, dt.timedelta(hours=1))
    await imp_state.apply(_view(IMPORTER, EXPORTER, f"127.0.0.1:{options['exporter_port']}", jwt_key))
    offers = StaticImportedOffers({
        f"{EXPORTER}:o{i}": ImportedOfferTerms(
            imported_offer_id=f"{EXPORTER}:o{i}", exporter_wl=EXPORTER, source_offer_id=f"o{i}",
            source_currency="XPY-A", source_unit_price=PRICE, currency="XPY-B", unit_price=PRICE * FX,
            fx_version=1)
        for i in range(OFFERS)})
    config = CheckoutConfig(peers=PeerConfig(order_timeout_s=options["order_timeout_ms"] / 1000))
    guard = LocalGuard(imp_state)  # the node's local imbalance guard: every checkout reserves and settles
    guard.load([])
    client = install_peers(imp_ctx, imp_state, _NoCp(), config.peers)
    checkouts = install_checkout(imp_ctx, imp_state, client, offers, config=config, import_guard=guard)
    storefront = checkout_storefront(imp_ctx, imp_state, client, checkouts)
    issued = issue_token(jwt_key, subject=Identity.wl(IMPORTER), audience_wl=EXPORTER,
                         scopes=[SCOPE_PLACE_ORDERS], now=clock.now())
    checkouts.tokens.put(EXPORTER, issued.token, clock.now(), issued.expires_at)
    confirm_ms: list[float] = []
    place = checkouts.peers.place_order

    async def timed_place(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await place(*a, **kw)
        finally:
            confirm_ms.append((time.perf_counter() - t0) * 1000)

    checkouts.peers.place_order = timed_place  # type: ignore[method-assign]  # the bench times each call
    server = await start_server(
        registrations=storefront.component.registrations, service_names=storefront.component.service_names,
        listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(imp_mat).credentials)],
        authz_table=NODE_AUTHZ, local_wl=IMPORTER, metrics=_observed_metrics(imp_ctx, options))
    lifecycle = Lifecycle(server, [checkouts.component, client.component, storefront.component],
                          closers=[imp_ctx.engine.dispose])
    # The node's background loops (reconciler, outbox) run as in production; the token loop is not needed.
    lifecycle.start_loops([checkouts.outbox.run, checkouts.reconciler.run])

    def command(what: str) -> Any:
        if what == "clear":
            confirm_ms.clear()
            return "ok"
        if what == "samples":
            return list(confirm_ms)
        raise ValueError(what)

    return lifecycle, command


class _NoCp:
    """The bench fills the token cache itself; nothing may reach for the CP."""

    def lease(self) -> Any:
        raise RuntimeError("the CP is not part of the checkout bench")

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


async def _baseline_figures(pki: PkiDir, url: str, backend: str, args: argparse.Namespace,
                            jwt_key: Any) -> dict[str, float]:
    """A bare mTLS unary RPC that verifies a JWT and commits one INSERT, at the same concurrency levels."""
    await _prepare(url)
    server = await _Child.start("baseline", pki.root, url, key_to_pem(jwt_key))
    out: dict[str, float] = {}
    try:
        token = issue_token(jwt_key, subject=Identity.wl(IMPORTER), audience_wl=EXPORTER,
                            scopes=[SCOPE_PLACE_ORDERS], now=SystemClock().now()).token
        metadata = bearer_metadata(token)
        async with secure_channel(f"127.0.0.1:{server.port}", _material(pki, Identity.wl(IMPORTER)),
                                  expected=Identity.wl(EXPORTER)) as ch:
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(BASELINE_METHOD)
            samples: list[float] = []

            async def one(i: int, record: bool = True) -> bool:
                t0 = time.perf_counter()
                try:
                    await call(b"", timeout=10, metadata=metadata)
                except grpc.aio.AioRpcError:
                    return False
                if record:
                    samples.append((time.perf_counter() - t0) * 1000)
                return True

            for level, n in ((1, args.checkouts_c1), (64, args.checkouts_c64)):
                await _drive(args.warmup, level, lambda i: one(i, record=False))
                samples.clear()
                cpu0 = (time.process_time(), await server.ask("cpu"))
                wall, failures = await _drive(n, level, one)
                cpu1 = (time.process_time(), await server.ask("cpu"))
                key = f"c{level}.{backend}"
                for name, a, b in zip(("client", "server"), cpu0, cpu1, strict=True):
                    out[f"checkout.baseline.cpu_ms_per_call.{name}.{key}"] = round((b - a) * 1000 / n, 3)
                out[f"checkout.baseline.p50_ms.{key}"] = round(percentile(samples, 0.5), 3)
                out[f"checkout.baseline.p99_ms.{key}"] = round(percentile(samples, 0.99), 3)
                out[f"checkout.baseline.calls_per_s.{key}"] = round((n - failures) / wall, 1)
    finally:
        await server.stop()
    return out


# --- servers in a child process (the exporter node, the baseline), so each node has its own interpreter ---------
def _observed_metrics(ctx: NodeContext, options: dict[str, Any]) -> RpcMetrics | None:
    """In the observability run: the RPC interceptor on, and the node's registry served for the scraper."""
    if not options.get("observe"):
        return None
    listener = serve_metrics("127.0.0.1:0", ctx.metrics.registry)
    options["metrics_port"] = listener.port
    return ctx.metrics.rpc


async def _serve_exporter(pki: PkiDir, url: str, jwt_key: Any, options: dict[str, Any] | None = None
                          ) -> Lifecycle:
    options = options if options is not None else {}
    clock = SystemClock()
    mat = _material(pki, Identity.wl(EXPORTER))
    ctx = _ctx(EXPORTER, url, pki, mat)
    state = PolicyState(EXPORTER, clock, dt.timedelta(hours=1))
    await state.apply(_view(EXPORTER, IMPORTER, "127.0.0.1:1", jwt_key))
    c = bench_offers.c
    stock = SqlOfferStock(id_col=c.offer_id, stock_col=c.stock, price_col=c.unit_price, currency_col=c.currency,
                          published_col=c.published_at)
    guard = LocalGuard(state)  # the node's local imbalance guard, with its upkeep loop as the risk feature runs it
    guard.load([])
    desk_guard = DeskGuard(guard, clock)
    orders = install_orders(ctx, state, stock, guards=[desk_guard])
    trader = install_trader(ctx, state, notifier=FeedNotifier(), orders=orders.rpc,
                            accounts=TraderAccounts(ctx.keyring, EXPORTER))
    server = await start_server(
        registrations=trader.component.registrations, service_names=trader.component.service_names,
        listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(mat).credentials)],
        authz_table=NODE_AUTHZ, local_wl=EXPORTER, metrics=_observed_metrics(ctx, options))
    lifecycle = Lifecycle(server, [orders.component, trader.component], closers=[ctx.engine.dispose])
    lifecycle.start_loops([lambda stop: desk_guard.run(ctx.engine, stop)])
    now = clock.now()
    await orders.runner.tx(lambda conn: conn.execute(sa.insert(bench_offers), [
        dict(offer_id=f"o{i}", currency="XPY-A", unit_price=str(PRICE), stock=10**9, published_at=now)
        for i in range(OFFERS)]))
    return lifecycle


async def _serve_baseline(pki: PkiDir, url: str, jwt_key: Any) -> Lifecycle:
    clock = SystemClock()
    state = PolicyState(EXPORTER, clock, dt.timedelta(hours=1))
    await state.apply(_view(EXPORTER, IMPORTER, "127.0.0.1:1", jwt_key))
    verifier = policy_token_verifier(state, clock)
    runner = TxRunner(url)
    insert = sa.insert(bench_baseline)

    async def handle(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        who = caller()
        verifier.verify_metadata(context.invocation_metadata(), who)
        values = {"id": uuid.uuid4().hex, "caller": who.spiffe_id, "created_at": clock.now()}
        await runner.tx(lambda conn: conn.execute(insert, values))
        return b""

    handler = grpc.method_handlers_generic_handler("xcwl.bench.v1.Baseline", {
        "Insert": grpc.unary_unary_rpc_method_handler(handle, request_deserializer=None, response_serializer=None)})
    mat = _material(pki, Identity.wl(EXPORTER))
    server = await start_server(
        registrations=[lambda s: s.add_generic_rpc_handlers((handler,))], service_names=[],
        listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(mat).credentials)],
        authz_table=table({BASELINE_METHOD: Rule(frozenset({Kind.WL}))}))
    return Lifecycle(server, [], closers=[runner.close])


async def _child_main(kind: str, pki_root: str, url: str, key_pem: bytes, options: dict[str, Any],
                      conn: Any) -> None:
    pki, key = PkiDir(Path(pki_root)), load_key(key_pem)
    if options.get("observe"):
        enable_tracing(int(options["otlp_port"]), f"bench-{kind}", float(options["sample_ratio"]))
    command: Callable[[str], Any] = lambda what: None  # noqa: E731
    if kind == "importer":
        lifecycle, command = await _serve_importer(pki, url, key, options)
    elif kind == "exporter":
        lifecycle = await _serve_exporter(pki, url, key, options)
    else:
        lifecycle = await _serve_baseline(pki, url, key)
    assert lifecycle.server is not None
    conn.send(lifecycle.server.port)
    loop = asyncio.get_running_loop()
    while (what := await loop.run_in_executor(None, conn.recv)) != "stop":  # the parent's commands
        if what == "metrics_port":
            conn.send(options.get("metrics_port", 0))
            continue
        if what == "flush":
            conn.send(tracing.force_flush())
            continue
        conn.send(time.process_time() if what == "cpu" else command(what))
    tracing.shutdown_tracing()
    await lifecycle.stop(0)
    conn.send("stopped")


def _child_entry(kind: str, pki_root: str, url: str, key_pem: bytes, options: dict[str, Any], conn: Any) -> None:
    asyncio.run(_child_main(kind, pki_root, url, key_pem, options, conn))


class _Child:
    """A server node in its own process (spawned), reporting its port and stopping on request."""

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Any, port: int) -> None:
        self.process = process
        self._conn = conn
        self.port = port

    @classmethod
    async def start(cls, kind: str, pki_root: Path, url: str, key_pem: bytes,
                    options: dict[str, Any] | None = None) -> _Child:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_child_entry, args=(kind, str(pki_root), url, key_pem, options or {}, child),
                              daemon=True)
        process.start()
        port = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
        return cls(process, parent, int(port))

    async def ask(self, what: str) -> Any:
        """Send a command to the child and wait for its answer."""
        self._conn.send(what)
        return await asyncio.get_running_loop().run_in_executor(None, self._conn.recv)

    async def stop(self) -> None:
        self._conn.send("stop")
        await asyncio.get_running_loop().run_in_executor(None, self._conn.recv)
        await asyncio.get_running_loop().run_in_executor(None, self.process.join, 10)


async def run(args: argparse.Namespace) -> dict[str, float]:
    """Run the benchmark; returns the flat figure map printed by ``--json``."""
    out: dict[str, float] = {"checkout.rounds": float(args.rounds)}
    jwt_key = new_private_key()
    with tempfile.TemporaryDirectory(prefix="xcwl-bench-checkout-") as tmp:
        pki = PkiDir(Path(tmp) / "pki")
        pki.init_ca()
        announce(args, "sqlite: baseline")
        out.update(await _baseline_figures(pki, f"sqlite:///{tmp}/baseline.db", "sqlite", args, jwt_key))
        announce(args, "sqlite: checkouts")

        async def sqlite_url(variant: str, node: str) -> str:
            return f"sqlite:///{tmp}/{variant}-{node}.db"

        out.update(await _checkout_figures(pki, sqlite_url, "sqlite", args, jwt_key, observe=True))
        if not args.skip_postgres:
            announce(args, "postgres: baseline and checkouts")
            async with scratch_postgres(args.pg_admin_dsn) as url:
                out.update(await _baseline_figures(pki, url, "postgres", args, jwt_key))
            async with contextlib.AsyncExitStack() as scratch:

                async def postgres_url(variant: str, node: str) -> str:
                    return await scratch.enter_async_context(scratch_postgres(args.pg_admin_dsn))

                out.update(await _checkout_figures(pki, postgres_url, "postgres", args, jwt_key, observe=False))
    if args.compare_plaintext:
        out.update(encryption_overhead(out, "checkout"))
    return out


if __name__ == "__main__":  # python -m xcwl.bench.checkout (until the CLI wires ``xcwl bench checkout``)
    import json

    _parser = argparse.ArgumentParser(prog="xcwl bench checkout")
    add_arguments(_parser)
    print(json.dumps(asyncio.run(run(_parser.parse_args()))))
