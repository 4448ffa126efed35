"""The mesh bench's phases over a started ``MeshWorld``: idle cost, policy propagation, trade at a fixed offered
rate, risk reaction, a CP replica killed mid-run, and the global invariants at the end."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
import sqlalchemy as sa

from cp_server.risk.recompute import check as recompute_check
from wl_node.catalog.tables import offers as offers_table
from wl_node.checkout.tables import checkouts as checkouts_table
from wl_node.checkout.tables import import_ledger
from wl_node.orders.tables import ledger_outbox
from wl_node.orders.tables import orders as orders_table
from wl_node.risk.tables import directions as directions_table
from wl_node.telemetry import queue as telemetry_queue
from xporty.cp.v1 import admin_service_pb2, signal_pb2
from xporty.node.v1 import storefront_pb2, storefront_service_pb2
from xwl_runtime.identity import Identity

from ..errors import CliError
from ..node_client import NodeClient, NodeRpcError
from ..ops_client import OpsClient
from ._mesh_world import LIMIT, STOCK, MeshWorld
from ._procstat import CpuWindow, pss_mb, rss_mb

SETTLE_TIMEOUT_S = 120.0
REACTION_TIMEOUT_S = 60.0


# --- idle -------------------------------------------------------------------------------------------------------
@dataclass
class Idle:
    """Idle cost: CPU % of one core per node and per CP replica over the window, RSS and PSS per node (MiB)."""

    node_cpu: dict[str, float]
    cp_cpu: dict[str, float]
    node_rss: dict[str, float]
    node_pss: dict[str, float] = field(default_factory=dict)
    """Proportional set size per node (MiB): shared library pages divided among the processes that map them."""


async def idle(world: MeshWorld, seconds: float, settle_s: float) -> Idle:
    """Let the mesh settle, then measure ``seconds`` of doing nothing."""
    await asyncio.sleep(settle_s)
    nodes = {name: p.popen.pid for name, p in world.node_procs.items()}
    cps = {p.name: p.popen.pid for p in world.cp_procs}
    window = CpuWindow({**nodes, **cps})
    window.start(time.monotonic())
    await asyncio.sleep(seconds)
    cpu = window.stop(time.monotonic())
    return Idle(node_cpu={k: cpu[k] for k in nodes}, cp_cpu={k: cpu[k] for k in cps},
                node_rss={name: rss_mb(pid) for name, pid in nodes.items()},
                node_pss={name: pss_mb(pid) for name, pid in nodes.items()})


# --- policy -----------------------------------------------------------------------------------------------------
async def policy_propagation(world: MeshWorld, changes: int) -> list[float]:
    """Milliseconds from each change's commit request to each node's report of applying it (N samples each).

    The change renames a WL: every node's view holds every WL, so it reaches all N. The time per node is the CP's
    receive time of that node's ReportPolicyStatus for the new version (same machine clock as the request).
    """
    samples: list[float] = []
    async with world.demo.client() as client:
        for k in range(changes):
            wl = world.wls[k % world.n]
            sent = dt.datetime.now(dt.UTC)
            resp = await client.update_wl(admin_service_pb2.UpdateWlRequest(wl_id=wl, name=f"Market {wl} r{k}"))
            samples += await _applied_times(client, world.n, resp.version, sent)
    return samples


async def _applied_times(client: OpsClient, n: int, version: int, sent: dt.datetime) -> list[float]:
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while len(seen) < n:
        for s in await client.node_status():
            if s.wl_id not in seen and s.applied_version >= version:
                seen[s.wl_id] = max(0.0, (s.report_time.ToDatetime(dt.UTC) - sent).total_seconds() * 1000)
        if time.monotonic() > deadline:
            raise CliError(f"policy version {version} reached {len(seen)} of {n} nodes in 60 s")
        await asyncio.sleep(0.02)
    return list(seen.values())


async def revocation_propagation(world: MeshWorld, revocations: int = 2) -> list[float]:
    """Milliseconds from each revocation's request to each node's report of applying the view that carries it.

    Each round revokes a spare certificate of one WL (issued with the CA key and imported first, so the nodes keep
    serving with their own): the revocation bumps the policy version, and every node's view lists it.
    """
    ca = world.demo.pki.load_ca()
    samples: list[float] = []
    async with world.demo.client() as client:
        for k in range(revocations):
            spare = ca.issue(Identity.wl(world.wls[k % world.n]))
            await client.import_certificate(spare.cert_pem.decode())
            sent = dt.datetime.now(dt.UTC)
            resp = await client.revoke_certificate(admin_service_pb2.RevokeCertificateRequest(
                serial=format(spare.certificate.serial_number, "x"), reason="bench: spare certificate"))
            samples += await _applied_times(client, world.n, resp.version, sent)
    return samples


# --- trade ------------------------------------------------------------------------------------------------------
@dataclass
class Trade:
    """Outcome of the fixed-rate checkout phase."""

    confirm_ms: list[float] = field(default_factory=list)
    """Latency of each completed Checkout RPC at the importer's local API (the exporter confirmed in it)."""
    e2e_ms: list[float] = field(default_factory=list)
    """From the checkout's scheduled start to its completion (includes any client-side lag of the schedule)."""
    attempted: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)


async def trade(world: MeshWorld, rate: float, seconds: float, rng: random.Random) -> Trade:
    """Open loop: one checkout every 1/rate s between a random importer and a random other exporter."""
    out = Trade()
    for wl in world.wls:
        await world.app(wl)
    start = time.monotonic()
    total = int(rate * seconds)
    tasks = []
    for i in range(total):
        importer, exporter = rng.sample(world.wls, 2)
        offer = f"{exporter}:{rng.choice(world.offer_ids(exporter))}"
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(_one(world, out, importer, offer, f"trade-{i}", due)))
    await asyncio.gather(*tasks)
    return out


async def _one(world: MeshWorld, out: Trade, importer: str, offer: str, key: str, due: float) -> None:
    out.attempted += 1
    app = await world.app(importer)
    request = storefront_service_pb2.CheckoutRequest(idempotency_key=key, imported_offer_id=offer, quantity=1,
                                                     buyer_reference=f"member-{key}")
    began = time.monotonic()
    try:
        checkout = await app.checkout(request)
    except NodeRpcError as err:
        _error(out, f"{err.remote.code.name}:{err.remote.reason}")
        return
    ended = time.monotonic()
    if checkout.status != storefront_pb2.CHECKOUT_STATUS_COMPLETED:
        _error(out, f"{storefront_pb2.CheckoutStatus.Name(checkout.status)}:{checkout.reason}")
        return
    out.confirm_ms.append((ended - began) * 1000)
    out.e2e_ms.append((ended - due) * 1000)


def _error(out: Trade, kind: str) -> None:
    out.errors += 1
    out.error_kinds[kind] = out.error_kinds.get(kind, 0) + 1


# --- risk -------------------------------------------------------------------------------------------------------
async def risk_reaction(world: MeshWorld, pairs: int, progress: Callable[[str], None]) -> list[float]:
    """Milliseconds from each DISABLE's issue at the CP to its effective time at both nodes of the pair.

    For ``pairs`` disjoint pairs: the importer buys from the exporter, then, once every node shipped its events
    (so the CP's balance of the pair is final, trade-phase orders included), the operator lowers the pair's limit
    to half that balance, so the CP's utilisation stands at 200% and it issues a DISABLE for the deficit direction
    (whichever it is: the trade phase may have left the pair leaning either way).
    """
    chosen = [(world.wls[2 * j], world.wls[2 * j + 1]) for j in range(min(pairs, world.n // 2))]
    async with world.demo.client() as client:
        last_seq = max((s.sequence for s in await client.signals(page_size=1)), default=0)
    nets: dict[tuple[str, str], Decimal] = {}
    async with world.demo.client() as client:
        for attempt in range(3):
            for exporter, importer in chosen:
                if nets.get((exporter, importer)):
                    continue
                app = await world.app(importer)
                for k in range(3):
                    await _checkout_answered(app, storefront_service_pb2.CheckoutRequest(
                        idempotency_key=f"risk-{exporter}-{attempt}-{k}", imported_offer_id=f"{exporter}:o1",
                        quantity=1, buyer_reference="risk"))
            late = await _shipped(world, SETTLE_TIMEOUT_S)
            if late:
                raise CliError(f"risk: events of {late[:5]} not at the CP after {SETTLE_TIMEOUT_S:.0f} s")
            for exporter, importer in chosen:
                nets[(exporter, importer)] = await _net(client, exporter, importer)
            if all(nets.values()):
                break  # a pair the trade phase left leaning the other way may have come back to exactly 0
        flat = [pair for pair, net in nets.items() if not net]
        if flat:
            raise CliError(f"risk: balance of {flat[:5]} still 0 after three rounds of purchases")
    samples: list[float] = []
    async with world.demo.client() as client:
        for exporter, importer in chosen:
            net = nets[(exporter, importer)]
            limit = max(net.copy_abs() / 2, Decimal("0.01")).quantize(Decimal("0.01"))
            await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
                wl_a=exporter, wl_b=importer, imbalance_limit=str(limit), reason="bench: limit below the balance"))
        for exporter, importer in chosen:
            sig = await _wait_disable(client, {exporter, importer}, last_seq)
            issued = sig.issue_time.ToDatetime(dt.UTC)
            for wl in (exporter, importer):
                effective = await _effective_at(world, wl, sig.signal_id)
                samples.append(max(0.0, (effective - issued).total_seconds() * 1000))
        for exporter, importer in chosen:  # back to the mesh's limit (the CP re-enables)
            await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
                wl_a=exporter, wl_b=importer, imbalance_limit=LIMIT, reason="bench: limit restored"))
    progress(f"risk: {len(chosen)} DISABLE signal(s) effective at both nodes")
    return samples


async def _checkout_answered(app: NodeClient, request: storefront_service_pb2.CheckoutRequest) -> None:
    """One checkout, repeated with its idempotency key while the node does not answer in time (a mesh still
    draining the trade phase's backlog), up to ``SETTLE_TIMEOUT_S``."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        try:
            await app.checkout(request)
            return
        except NodeRpcError as err:
            transient = err.remote.code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
            if not transient or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.5)


async def _net(client: OpsClient, a: str, b: str) -> Decimal:
    """The CP's net balance of the pair (0 when it has none yet)."""
    for row in await client.balances():
        if {row.wl_a, row.wl_b} == {a, b}:
            return Decimal(row.net_delta)
    return Decimal(0)


async def _wait_disable(client: OpsClient, pair: set[str], after: int) -> signal_pb2.Signal:
    deadline = time.monotonic() + REACTION_TIMEOUT_S
    while True:
        for s in await client.signals(page_size=100):
            disable = s.kind == signal_pb2.SIGNAL_KIND_DISABLE
            if s.sequence > after and disable and {s.exporter_wl, s.importer_wl} == pair:
                return s
        if time.monotonic() > deadline:
            raise CliError(f"no DISABLE for {sorted(pair)} within {REACTION_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.05)


async def _effective_at(world: MeshWorld, wl: str, signal_id: str) -> dt.datetime:
    deadline = time.monotonic() + REACTION_TIMEOUT_S
    d = directions_table
    while True:
        async with world.demo.store(world.demo.node_db(wl)) as engine, engine.connect() as conn:
            row = (await conn.execute(sa.select(d.c.effective_at).where(d.c.signal_id == signal_id))).first()
        if row is not None:
            at: dt.datetime = row.effective_at
            return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        if time.monotonic() > deadline:
            raise CliError(f"{wl} did not apply signal {signal_id} within {REACTION_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.05)


# --- fault ------------------------------------------------------------------------------------------------------
async def replica_fault(world: MeshWorld, during: Callable[[], Awaitable[None]], progress: Callable[[str], None],
                        ) -> dict[str, float]:
    """Kill CP replica 1 (SIGKILL) while ``during`` runs (a policy change and trade); restart it afterwards.

    Returns {"policy_ok": 1/0}: whether a policy change made after the kill reached every node through the
    surviving replica (the streams moved there).
    """
    await world.kill_cp(0)
    progress("fault: CP replica 1 killed (SIGKILL); nodes reconnect through the balancer to replica 2")
    await during()
    async with world.demo.client(f"127.0.0.1:{world.cp_ports[1]}") as client:
        resp = await client.update_wl(admin_service_pb2.UpdateWlRequest(wl_id=world.wls[0], name="after the kill"))
    took = await world.wait_applied(resp.version, timeout=120)
    progress(f"fault: a change made on replica 2 reached every node in {took * 1000:.0f} ms")
    await world.restart_cp(0)
    progress("fault: replica 1 restarted")
    return {"policy_ok": 1.0, "policy_after_kill_ms": took * 1000}


# --- invariants -------------------------------------------------------------------------------------------------
@dataclass
class Invariants:
    """The global invariants after the run; ``problems`` empty when they all hold."""

    sold: int = 0
    confirmed: int = 0
    completed: int = 0
    imported: int = 0
    problems: list[str] = field(default_factory=list)


async def invariants(world: MeshWorld) -> Invariants:
    """Stock sold = confirmed = completed = imported units; no PENDING checkout; every event shipped; the CP's
    balances equal a recomputation from its stored events."""
    out = Invariants()
    await _wait_quiet(world, out)
    for wl in world.wls:
        async with world.demo.store(world.demo.node_db(wl)) as engine, engine.connect() as conn:
            stocks = (await conn.execute(sa.select(offers_table.c.stock))).scalars().all()
            out.sold += sum(STOCK - int(s) for s in stocks)
            out.confirmed += int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(orders_table.c.quantity), 0))
                                                   .where(orders_table.c.status == "CONFIRMED")) or 0)
            c = checkouts_table
            out.completed += int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(c.c.quantity), 0))
                                                   .where(c.c.status == "COMPLETED")) or 0)
            out.imported += int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(import_ledger.c.quantity),
                                                                              0))) or 0)
    if not out.sold == out.confirmed == out.completed == out.imported:
        out.problems.append(f"units differ: sold {out.sold}, confirmed {out.confirmed}, completed {out.completed}, "
                            f"imported {out.imported}")
    async with world.demo.store(world.cp_db) as engine:
        mismatches = await recompute_check(engine)
    if mismatches:
        out.problems.append(f"CP balances differ from the recomputation: {mismatches[:3]}")
    return out


async def _wait_quiet(world: MeshWorld, out: Invariants) -> None:
    """Until no checkout is PENDING and every node's events reached the CP (or the timeout: a problem each)."""
    for wl in await _shipped(world, SETTLE_TIMEOUT_S):
        out.problems.append(f"{wl}: PENDING checkouts or unshipped events after {SETTLE_TIMEOUT_S:.0f} s")


async def _shipped(world: MeshWorld, timeout_s: float) -> list[str]:
    """Wait until no checkout is PENDING and every node's events reached the CP; the WLs still not there after
    ``timeout_s`` (empty when all are)."""
    deadline = time.monotonic() + timeout_s
    left = set(world.wls)
    while left and time.monotonic() < deadline:
        for wl in sorted(left):
            async with world.demo.store(world.demo.node_db(wl)) as engine, engine.connect() as conn:
                pending = await conn.scalar(sa.select(sa.func.count()).select_from(checkouts_table)
                                            .where(checkouts_table.c.status == "PENDING"))
                unadopted = await conn.scalar(sa.select(sa.func.count()).select_from(ledger_outbox)
                                              .where(ledger_outbox.c.shipped_at.is_(None)))
                unsent = await conn.scalar(sa.select(sa.func.count()).select_from(telemetry_queue.queue)
                                           .where(telemetry_queue.queue.c.state == telemetry_queue.PENDING))
            if not (pending or unadopted or unsent):
                left.discard(wl)
        if left:
            await asyncio.sleep(0.5)
    return sorted(left)
