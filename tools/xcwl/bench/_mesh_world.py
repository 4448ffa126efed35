"""The mesh bench's world: a CP (or two replicas on one PostgreSQL) and N real ``xcwl wl serve`` processes.

Built the way an operator would: a fresh PKI, the CP process(es), every WL registered with a bootstrap token, every
node enrolling online (its own certificate, its own SQLite store), all N(N−1)/2 pairs opened through AdminService,
offers published through each node's local API, and every importer's catalog waited for. Process handling and the
operator/app clients come from the demo (``xcwl.demo_world``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import sqlalchemy as sa

from wl_node.catalog.tables import imported_offers
from xporty.common.v1 import money_pb2
from xporty.cp.v1 import admin_service_pb2, policy_pb2, registry_pb2
from xporty.trader.v1 import offer_pb2
from xwl_runtime.grpc_codes import TRANSIENT
from xwl_runtime.identity import Identity
from xwl_runtime.tls import TlsMaterial

from ..demo_world import APP as APP_NAME
from ..demo_world import OPERATOR, Demo, Proc, free_port
from ..errors import CliError
from ..node_client import NodeClient, NodeRpcError
from ._tcp_balancer import TcpBalancer

PRICE = "1.00"
STOCK = 1_000_000
LIMIT = "100000000"
"""Imbalance limit of every pair while the mesh is measured (the risk phase lowers one pair's)."""
ORDER_TIMEOUT_MS = 2000
"""Order deadline of the nodes: N processes share two cores, so queueing must not turn into in-doubt checkouts."""
START_BATCH = 5
"""Nodes started at once (each start imports the node's stack and enrolls: CPU-heavy for a second or two)."""
PUBLISH_ATTEMPTS = 4
"""Sends of one offer at most while the nodes are still busy with their first syncs."""
CONVERGE_TIMEOUT_S = 600.0
START_TIMEOUT_S = 300.0
"""A node's start (imports, migrations in a child, enrollment) on a loaded shared machine can take a while."""


def wl_name(i: int) -> str:
    return f"wl-{i:02d}"


@dataclass
class MeshWorld:
    """The running processes and the clients the phases use."""

    root: Path
    n: int
    offers: int
    progress: Callable[[str], None]
    postgres_url: str = ""
    demo: Demo = field(init=False)
    wls: list[str] = field(default_factory=list)
    cp_procs: list[Proc] = field(default_factory=list)
    cp_ports: list[int] = field(default_factory=list)
    balancer: TcpBalancer | None = None
    apps: dict[str, NodeClient] = field(default_factory=dict)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    def __post_init__(self) -> None:
        self.demo = Demo(root=self.root, out=self.progress)
        self.wls = [wl_name(i) for i in range(1, self.n + 1)]

    @property
    def node_procs(self) -> dict[str, Proc]:
        names = set(self.wls)
        return {p.name: p for p in self.demo.procs if p.name in names}

    @property
    def cp_db(self) -> str:
        return self.postgres_url or self.demo.cp_db

    def offer_ids(self, wl_id: str) -> list[str]:
        return [f"o{k}" for k in range(1, self.offers + 1)]

    # --- set-up ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        started = time.monotonic()
        self.demo.pki.init_ca()
        self.demo.pki.issue(Identity.ops(OPERATOR))
        await self._start_cps()
        await self._register()
        # Pairs first, as an operator preparing a mesh would: each node then receives the full view once when it
        # connects, instead of every node receiving (and reporting) each of the 3·N(N−1)/2 set-up changes.
        version = await self._open_pairs()
        await self._start_nodes()
        took = await self.wait_applied(version)
        self.progress(f"every node applied policy version {version} ({took:.1f} s after the last start)")
        await self._publish_offers()
        await self._wait_catalogs()
        self.progress(f"mesh of {self.n} nodes ready in {time.monotonic() - started:.0f} s")

    def _spawn_cp(self, index: int) -> Proc:
        port, enroll = self.cp_ports[index], free_port()
        if index == 0:
            self.demo.enroll_port = enroll
        return self.demo.spawn(f"cp{index + 1}", [
            "cp", "serve", "--pki", str(self.demo.pki.root), "--db", self.cp_db,
            "--listen", f"127.0.0.1:{port}", "--enroll-listen", f"127.0.0.1:{enroll}",
        ])

    async def _start_cps(self) -> None:
        replicas = 2 if self.postgres_url else 1
        self.cp_ports = [free_port() for _ in range(replicas)]
        for index in range(replicas):  # one after the other: the first start migrates the shared database
            proc = self._spawn_cp(index)
            self.cp_procs.append(proc)
            await self.wait_serving(proc, f"127.0.0.1:{self.cp_ports[index]}")
        if replicas > 1:  # nodes reach the replicas through a TCP load balancer, as they would in production
            self.balancer = TcpBalancer([f"127.0.0.1:{p}" for p in self.cp_ports])
            self.demo.cp_port = await self.balancer.start()
        else:
            self.demo.cp_port = self.cp_ports[0]
        self.progress(f"CP: {replicas} replica(s) SERVING on {self.cp_db.split('://')[0]}")

    async def _register(self) -> None:
        async with self.demo.client() as client:
            for i, wl in enumerate(self.wls, start=1):
                self.demo.node_ports[wl] = free_port()
                await client.register_wl(registry_pb2.WhiteLabel(
                    wl_id=wl, name=f"Market {i}", currency=f"XPY-{i:02d}", currency_decimals=2, reference_rate="1",
                    trader_endpoint=self.demo.node_target(wl)))
                self.demo.tokens[wl] = (await client.create_bootstrap_token(wl)).token
        self.progress(f"{self.n} WLs registered with bootstrap tokens")

    async def _start_nodes(self) -> None:
        for first in range(0, self.n, START_BATCH):
            batch = self.wls[first:first + START_BATCH]
            await asyncio.gather(*(self._start_node(wl) for wl in batch))
            self.progress(f"nodes SERVING: {first + len(batch)}/{self.n}")

    async def _start_node(self, wl: str) -> None:
        node_dir = self.root / wl
        (node_dir / "pki").mkdir(parents=True)
        shutil.copy(self.demo.pki.ca_cert, node_dir / "pki" / "ca.crt")
        proc = self.demo.spawn(wl, [
            "wl", "serve", "--wl-id", wl, "--pki", str(node_dir / "pki"), "--cp", self.demo.cp_target,
            "--cp-enroll", f"127.0.0.1:{self.demo.enroll_port}", f"--bootstrap-token={self.demo.tokens[wl]}",
            "--db", self.demo.node_db(wl), "--listen", self.demo.node_target(wl),
            "--state-dir", str(node_dir / "state"), "--order-timeout-ms", str(ORDER_TIMEOUT_MS),
        ])
        await self.wait_serving(proc, self.demo.node_target(wl), Identity.wl(wl))

    async def wait_serving(self, proc: Proc, target: str, expected: Identity | None = None) -> None:
        """Health SERVING at ``target`` within START_TIMEOUT_S (the demo's wait, with a longer deadline)."""
        await self.demo.wait_serving(proc, target, expected, timeout_s=START_TIMEOUT_S, interval_s=0.1)

    async def _open_pairs(self) -> int:
        pairs = [(a, b) for i, a in enumerate(self.wls) for b in self.wls[i + 1:]]
        version = 0
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for pair in pairs:
            queue.put_nowait(pair)
        done = [0]

        async def worker() -> None:
            nonlocal version
            async with self.demo.client() as client:
                while not queue.empty():
                    a, b = queue.get_nowait()
                    resp = await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
                        wl_a=a, wl_b=b, status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, fx_rate="1",
                        imbalance_limit=LIMIT, force_fx=True, reason="bench: open the pair"))
                    version = max(version, resp.version)
                    for exporter, importer in ((a, b), (b, a)):
                        d = await client.update_direction(admin_service_pb2.UpdateDirectionPolicyRequest(
                            exporter_wl=exporter, importer_wl=importer, import_enabled=True,
                            destination_visible=True, reason="bench: open the direction"))
                        version = max(version, d.version)
                    done[0] += 1
                    if done[0] % max(1, len(pairs) // 10) == 0:
                        self.progress(f"pairs opened: {done[0]}/{len(pairs)}")

        await asyncio.gather(*(worker() for _ in range(4)))
        self.progress(f"{len(pairs)} pairs open (policy version {version})")
        return version

    async def wait_applied(self, version: int, timeout: float = CONVERGE_TIMEOUT_S) -> float:
        """Seconds until every node reported applying ``version`` (or later)."""
        start = time.monotonic()
        async with self.demo.client() as client:
            while True:
                nodes = await client.node_status()
                if len(nodes) >= self.n and all(s.applied_version >= version for s in nodes):
                    return time.monotonic() - start
                if time.monotonic() - start > timeout:
                    behind = [s.wl_id for s in nodes if s.applied_version < version]
                    raise CliError(f"nodes did not apply policy version {version}: {behind[:10]}")
                await asyncio.sleep(0.05)

    async def app(self, wl: str) -> NodeClient:
        """WL ``wl``'s own service on its node's local API (one channel kept per WL)."""
        if wl not in self.apps:
            identity = Identity.app(wl, APP_NAME)
            if not self.demo.pki.has(identity):
                self.demo.pki.issue(identity)
            self.apps[wl] = await self._stack.enter_async_context(NodeClient.connect(
                self.demo.node_target(wl), TlsMaterial.from_pki(self.demo.pki, identity), expected=Identity.wl(wl)))
        return self.apps[wl]

    async def _publish_offers(self) -> None:
        # Every offer published wakes the N−1 importers' streams and each pulls from its exporter: START_BATCH WLs
        # publish at a time, as WLs going live would, rather than all N at once.
        gate = asyncio.Semaphore(START_BATCH)

        async def publish(wl: str) -> None:
            async with gate:
                await publish_all(wl)

        async def publish_all(wl: str) -> None:
            app = await self.app(wl)
            currency = f"XPY-{self.wls.index(wl) + 1:02d}"
            for offer_id in self.offer_ids(wl):
                await self._publish_once(app, offer_pb2.Offer(
                    offer_id=offer_id, title=f"{wl} offer {offer_id}", description="bench offer", category="bench",
                    unit_price=money_pb2.Money(currency=currency, amount=PRICE), stock=STOCK,
                    manager=offer_pb2.TraderContact(name="Trader", email=f"trader@{wl}.example",
                                                    phone="+55 11 91234-5678")))

        await asyncio.gather(*(publish(wl) for wl in self.wls))
        self.progress(f"{self.offers} offers published by each of the {self.n} WLs")

    @staticmethod
    async def _publish_once(app: NodeClient, offer: offer_pb2.Offer) -> None:
        """Publish, as a WL's app would on a node still busy with its first syncs: an offer write is not retried by
        the SDK (its outcome is unknown after a deadline), so a timed-out publish is sent again and ALREADY_EXISTS
        means the earlier one landed."""
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                await app.publish(offer)
                return
            except NodeRpcError as err:
                if err.remote.code is grpc.StatusCode.ALREADY_EXISTS and attempt:
                    return
                if err.remote.code not in TRANSIENT or attempt + 1 == PUBLISH_ATTEMPTS:
                    raise
            await asyncio.sleep(1.0 + attempt)

    async def imported_count(self, wl: str) -> int:
        async with self.demo.store(self.demo.node_db(wl)) as engine, engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(imported_offers)) or 0)

    async def _wait_catalogs(self) -> None:
        want = (self.n - 1) * self.offers
        start = time.monotonic()
        pending = set(self.wls)
        while pending:
            for wl in sorted(pending):
                if await self.imported_count(wl) >= want:
                    pending.discard(wl)
            if not pending:
                break
            if time.monotonic() - start > CONVERGE_TIMEOUT_S:
                raise CliError(f"catalogs not synced after {CONVERGE_TIMEOUT_S:.0f} s: {sorted(pending)[:10]}")
            await asyncio.sleep(0.5)
        self.progress(f"every importer holds the {want} offers of its {self.n - 1} peers "
                      f"({time.monotonic() - start:.1f} s)")

    # --- CP replicas ----------------------------------------------------------------------------------------
    async def kill_cp(self, index: int) -> None:
        """SIGKILL one CP replica (a crash, not a drain)."""
        proc = self.cp_procs[index]
        proc.popen.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.popen.wait)

    async def restart_cp(self, index: int) -> None:
        proc = self._spawn_cp(index)
        self.cp_procs[index] = proc
        await self.wait_serving(proc, f"127.0.0.1:{self.cp_ports[index]}")

    # --- tear-down ------------------------------------------------------------------------------------------
    async def close(self) -> list[str]:
        """Close clients, SIGTERM the nodes together, then the CP(s); problems found."""
        await self._stack.aclose()
        problems = []
        nodes = [p for p in self.demo.procs if p.name in set(self.wls)]
        found = await asyncio.gather(*(p.stop(killed_ok=True, tail_lines=5) for p in nodes))
        problems += [f for f in found if f]
        for proc in self.cp_procs:
            found_cp = await proc.stop(killed_ok=True, tail_lines=5)
            if found_cp:
                problems.append(found_cp)
        if self.balancer is not None:
            await self.balancer.close()
        return problems


@contextlib.asynccontextmanager
async def mesh(root: Path, n: int, offers: int, progress: Callable[[str], None],
               postgres_url: str = "") -> AsyncIterator[MeshWorld]:
    """A started mesh, stopped on exit (a failed stop is reported on stderr, not raised over the real error)."""
    world = MeshWorld(root=root, n=n, offers=offers, progress=progress, postgres_url=postgres_url)
    try:
        await world.start()
        yield world
    finally:
        problems = await world.close()
        for problem in problems:
            print(f"mesh: {problem}", file=sys.stderr)
