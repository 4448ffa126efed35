"""``xcwl bench policy``: how fast a policy change reaches every WL node, against a bare gRPC push baseline.

Layout (two processes, so both cores work): this process runs a real CP (``cp_server.app.build_cp``: SQLite in a
temp dir, mTLS, the production pipeline) and the operator client; a child process
(``xcwl.bench._subscribers``) runs N real policy agents (``PolicyAgent`` + ``PolicyState`` + last-known-good
store, one mTLS channel and certificate each, as a node builds them) streaming WatchPolicies from it.

Setup: WLs ``hub`` and ``s000`` … registered, one pair (hub, sNNN) per subscriber. Each change sets the FX of one
pair (alternating between two values 5% apart, rotating over the pairs) with UpdatePairPolicy; since a view's
version is the CP-wide version, every change produces a new snapshot for every subscriber. Changes are sequential:
the next one starts ``--gap-ms`` after every subscriber applied the previous one (policy changes are rare events;
the gap keeps the nodes' ReportPolicyStatus writes of one change from queueing in front of the next change).

Measured per change and subscriber: from the wall-clock time just before the operator's UpdatePairPolicy is sent
(so it includes the CP's validation, transaction and commit) to the wall-clock time the agent's
``PolicyState.apply`` ran (after validation: from then on the node serves the new view). The agent persists the
last-known-good file right after applying and reports "applied" to the CP only once that file is fsynced; the time
that write completed is measured too (``policy.durable``). All are ``time.time_ns()`` on the same host. Figures:

* ``policy.propagation.p50_ms.nN`` / ``p99_ms.nN``: per change, the MAX over the N subscribers (the time until the
  last node applied), then p50/p99 across changes;
* ``policy.propagation_per_node.p50_ms.nN`` / ``p99_ms.nN``: every (change, subscriber) sample;
* ``policy.durable.p50_ms.nN`` / ``p99_ms.nN``: like propagation, up to the fsynced last-known-good write (per
  change the max over the N subscribers), i.e. the earliest a node may report the version applied;
* ``policy.commit_rpc.p50_ms.nN`` / ``p99_ms.nN``: the UpdatePairPolicy round trip itself (validation, transaction,
  commit, and the CP installing the new version), i.e. the part of the propagation spent before the push;
* ``policy.baseline.p50_ms.nN`` / ``p99_ms.nN``: the same process layout and mTLS, but a bare grpc.aio
  server-streaming service pushing a 2 KB message to N subscribers (per push: max over subscribers);
* ``policy.ratio_p99.nN``: propagation p99 / baseline p99 (the baseline of N runs right after the policy run of N);
* ``policy.revocation.p50_ms.nN`` / ``p99_ms.nN``: in the same subscriber session, right after the changes: from
  just before the operator's RevokeCertificate (one offline-issued, imported certificate of WL ``hub`` per
  revocation, ``--revocations`` of them) until the LAST of the N agents applied the view carrying it, i.e. until
  every node refuses that certificate; ``policy.revocation.ratio_p99.nN`` divides by the same-run baseline p99;
  ``policy.revocation_rpc.p50_ms.nN`` / ``p99_ms.nN``: the RevokeCertificate round trip alone;
* ``policy.cpu_ms_per_change.cp.nN`` / ``.nodes.nN``: CPU time (user + system) per change of this process (the CP
  and the operator client) and of the subscriber process, over the measured changes, report handling included.
  Unlike latencies these hardly move with the machine's background load, so they compare runs on a shared host.

Targets: p99 ≤ 100 ms at 50 nodes and ≤ 15 × the baseline p99; revocation p99 ≤ 200 ms at 50 nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from cp_server.app import build_cp
from cp_server.settings import CpSettings
from xporty.cp.v1 import admin_service_pb2, policy_pb2, registry_pb2
from xwl_runtime.heap import freeze_startup_heap
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir
from xwl_runtime.tls import TlsMaterial

from ..ops_client import OpsClient
from ..progress import announce
from ._subscribers import APPLIED, BASELINE_METHOD, DURABLE, SEQ

HUB = "hub"
OPERATOR = "bench"
MESSAGE_BYTES = 2048
FX_VALUES = ("1", "1.05")
APPLY_TIMEOUT_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``xcwl bench policy``."""
    parser.add_argument("--nodes", default="1,10,50", help="comma-separated subscriber counts")
    parser.add_argument("--changes", type=int, default=60, help="policy changes (and baseline pushes) per count")
    parser.add_argument("--gap-ms", type=float, default=100.0,
                        help="pause after every node applied a change (lets the nodes' status reports settle)")
    parser.add_argument("--revocations", type=int, default=20, help="certificate revocations per count")
    parser.add_argument("--skip-baseline", action="store_true", help="measure the CP only")
    parser.add_argument("--state-dir", help="where the agents write their last-known-good files (default: the temp "
                                            "dir, i.e. the real disk with fsync)")


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil
    return ordered[min(rank, len(ordered)) - 1]


def sub_id(i: int) -> str:
    return f"s{i:03d}"


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; None where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


class Collector:
    """Reads ``<kind> <index> <key> <time_ns>`` lines from the subscriber process; waits for all N per key."""

    def __init__(self, pid: int = 0) -> None:
        self.pid = pid
        self._seen: dict[str, dict[int, dict[int, int]]] = {APPLIED: defaultdict(dict), DURABLE: defaultdict(dict)}
        self._changed = asyncio.Event()

    async def read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            kind, *numbers = line.decode().split()
            index, key, t_ns = (int(x) for x in numbers)
            self._seen[kind][key][index] = t_ns
            self._changed.set()

    async def wait_all(self, key: int, n: int, timeout: float = APPLY_TIMEOUT_S, kind: str = APPLIED) -> list[int]:
        """Times at which all N subscribers reached ``key`` (a key reached later counts as reached)."""
        deadline = time.monotonic() + timeout
        seen = self._seen[kind]
        while True:
            reached: dict[int, int] = {}
            for k in sorted(seen):
                if k >= key:
                    for index, t in seen[k].items():
                        reached.setdefault(index, t)
            if len(reached) >= n:
                return list(reached.values())
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"only {len(reached)} of {n} subscribers reached {key}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


@contextlib.asynccontextmanager
async def subscribers(mode: str, target: str, pki: PkiDir, n: int, state_dir: Path) -> AsyncIterator[Collector]:
    """The subscriber process for the duration of the block; its lines feed the collector."""
    config = {"mode": mode, "target": target, "pki": str(pki.root), "wl_ids": [sub_id(i) for i in range(n)],
              "state_dir": str(state_dir)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xcwl.bench._subscribers", json.dumps(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    collector = Collector(proc.pid)
    reader = asyncio.create_task(collector.read(proc.stdout))
    try:
        yield collector
    finally:
        proc.stdin.close()  # the child stops on EOF
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


def _ms(ns: float) -> float:
    return ns / 1e6


def _summarize(prefix: str, n: int, per_change: list[float], per_node: list[float] | None = None
               ) -> dict[str, float]:
    out = {f"{prefix}.p50_ms.n{n}": percentile(per_change, 50), f"{prefix}.p99_ms.n{n}": percentile(per_change, 99)}
    if per_node is not None:
        base = prefix.replace("propagation", "propagation_per_node")
        out[f"{base}.p50_ms.n{n}"] = percentile(per_node, 50)
        out[f"{base}.p99_ms.n{n}"] = percentile(per_node, 99)
    return out


# --- the CP --------------------------------------------------------------------------------------------------


async def _setup_world(client: OpsClient, max_n: int) -> None:
    for wl_id in (HUB, *(sub_id(i) for i in range(max_n))):
        await client.register_wl(registry_pb2.WhiteLabel(
            wl_id=wl_id, name=wl_id, currency=f"XPY-{wl_id.upper()}", currency_decimals=2, reference_rate="1",
            trader_endpoint="127.0.0.1:9"))
    for i in range(max_n):
        await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
            wl_a=HUB, wl_b=sub_id(i), status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, fx_rate=FX_VALUES[0],
            imbalance_limit="1000", reason="bench setup"))


async def _victims(client: OpsClient, pki: PkiDir, count: int) -> list[str]:
    """Serials of ``count`` offline-issued, imported certificates of WL ``hub`` (no subscriber uses them)."""
    ca = pki.load_ca()
    serials = []
    for _ in range(count):
        issued = ca.issue(Identity.wl(HUB))
        serials.append((await client.import_certificate(issued.cert_pem.decode())).serial)
    return serials


async def measure_revocation(client: OpsClient, collector: Collector, n: int, serials: list[str],
                             gap_s: float) -> dict[str, float]:
    """Per revocation: operator call → the last of the N agents applied the view that carries it."""
    per_revocation: list[float] = []
    rpc: list[float] = []
    for serial in serials:
        t0 = time.time_ns()
        resp = await client.revoke_certificate(admin_service_pb2.RevokeCertificateRequest(
            serial=serial, reason="bench"))
        rpc.append(_ms(time.time_ns() - t0))
        times = await collector.wait_all(resp.version, n)
        per_revocation.append(_ms(max(times) - t0))
        await asyncio.sleep(gap_s)
    if not per_revocation:
        return {}
    return {**_summarize("policy.revocation", n, per_revocation),
            **_summarize("policy.revocation_rpc", n, rpc)}


async def measure_policy(client: OpsClient, cp_target: str, pki: PkiDir, n: int, changes: int, gap_s: float,
                         work: Path, current: int, state_dir: str | None = None,
                         revocations: int = 0) -> dict[str, float]:
    per_change: list[float] = []
    per_node: list[float] = []
    durable: list[float] = []
    rpc: list[float] = []
    lkg_dir = Path(state_dir) / f"lkg-n{n}" if state_dir else work / f"lkg-n{n}"
    victims = await _victims(client, pki, revocations)
    async with subscribers("policy", cp_target, pki, n, lkg_dir) as collector:
        await collector.wait_all(current, n, kind=DURABLE)  # every agent connected, applied and persisted
        cpu_cp, cpu_nodes = time.process_time(), process_cpu_s(collector.pid)
        for c in range(changes):
            pair = sub_id(c % n)
            fx = FX_VALUES[(c // n + 1) % 2]
            t0 = time.time_ns()
            resp = await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
                wl_a=HUB, wl_b=pair, fx_rate=fx, reason="bench"))
            rpc.append(_ms(time.time_ns() - t0))
            times = await collector.wait_all(resp.version, n)
            per_node.extend(_ms(t - t0) for t in times)
            per_change.append(_ms(max(times) - t0))
            durable.append(_ms(max(await collector.wait_all(resp.version, n, kind=DURABLE)) - t0))
            await asyncio.sleep(gap_s)
        out = {f"policy.cpu_ms_per_change.cp.n{n}": (time.process_time() - cpu_cp) * 1000 / changes}
        nodes_now = process_cpu_s(collector.pid)
        if cpu_nodes is not None and nodes_now is not None:
            out[f"policy.cpu_ms_per_change.nodes.n{n}"] = (nodes_now - cpu_nodes) * 1000 / changes
        out.update(await measure_revocation(client, collector, n, victims, gap_s))
    out.update(_summarize("policy.propagation", n, per_change, per_node))
    out.update(_summarize("policy.durable", n, durable))
    out[f"policy.commit_rpc.p50_ms.n{n}"] = percentile(rpc, 50)
    out[f"policy.commit_rpc.p99_ms.n{n}"] = percentile(rpc, 99)
    return out


# --- the baseline --------------------------------------------------------------------------------------------


class PushServer:
    """A bare grpc.aio service with one server-streaming method; ``push`` sends one message to every stream."""

    def __init__(self) -> None:
        self.queues: list[asyncio.Queue[bytes]] = []
        self.connected = asyncio.Event()
        self.expected = 0

    async def _watch(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.append(queue)
        if len(self.queues) >= self.expected:
            self.connected.set()
        try:
            while True:
                yield await queue.get()
        finally:
            self.queues.remove(queue)

    def handler(self) -> grpc.GenericRpcHandler:
        service, method = BASELINE_METHOD.strip("/").split("/")
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            method: grpc.unary_stream_rpc_method_handler(self._watch)  # bytes in, bytes out
        }
        return grpc.method_handlers_generic_handler(service, handlers)

    def push(self, seq: int) -> None:
        message = SEQ.pack(seq).ljust(MESSAGE_BYTES, b"x")
        for queue in self.queues:
            queue.put_nowait(message)


async def measure_baseline(pki: PkiDir, n: int, pushes: int, gap_s: float, work: Path) -> dict[str, float]:
    push = PushServer()
    push.expected = n
    tls = TlsMaterial.from_pki(pki, Identity.cp())
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((push.handler(),))
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
        [(tls.pair.key_pem, tls.pair.cert_pem)], root_certificates=tls.ca_pem, require_client_auth=True))
    await server.start()
    per_push: list[float] = []
    try:
        async with subscribers("baseline", f"127.0.0.1:{port}", pki, n, work) as collector:
            await asyncio.wait_for(push.connected.wait(), APPLY_TIMEOUT_S)
            for seq in range(1, pushes + 1):
                t0 = time.time_ns()
                push.push(seq)
                times = await collector.wait_all(seq, n)
                per_push.append(_ms(max(times) - t0))
                await asyncio.sleep(gap_s)
    finally:
        await server.stop(0)
    return _summarize("policy.baseline", n, per_push)


# --- entry point ---------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, float]:
    """Run the benchmark; returns the flat figure map."""
    counts = sorted({int(x) for x in args.nodes.split(",") if x.strip()})
    if not counts or counts[0] < 1:
        raise ValueError("--nodes: positive integers, e.g. 1,10,50")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="xcwl-bench-policy-") as tmp:
        work = Path(tmp)
        pki = PkiDir(work / "pki")
        pki.init_ca()
        pki.issue(Identity.ops(OPERATOR))
        for i in range(counts[-1]):
            pki.issue(Identity.wl(sub_id(i)))
        cp = await build_cp(CpSettings(db_url=f"sqlite:///{work / 'cp.db'}", pki_dir=pki.root,
                                       listen="127.0.0.1:0", enroll_listen="127.0.0.1:0"))
        cp_target = f"127.0.0.1:{cp.port}"
        try:
            material = TlsMaterial.from_pki(pki, Identity.ops(OPERATOR))
            async with OpsClient.connect(cp_target, material, timeout=30) as client:
                announce(args, f"registering {counts[-1]} WLs")
                for i in range(counts[-1]):  # offline-issued: the CP refuses them until an operator imports them
                    await client.import_certificate(pki.cert(Identity.wl(sub_id(i))).read_text())
                await _setup_world(client, counts[-1])
                freeze_startup_heap()  # as `xcwl cp serve` does once it is up
                for n in counts:
                    announce(args, f"n={n}: policy propagation")
                    current = cp.hub.version
                    figures.update(await measure_policy(client, cp_target, pki, n, args.changes,
                                                        args.gap_ms / 1000, work, current, args.state_dir,
                                                        args.revocations))
                    if args.skip_baseline:
                        continue
                    # Right after the policy run of the same N (the CP idles meanwhile), so that on a shared
                    # machine both see about the same background load.
                    announce(args, f"n={n}: baseline")
                    figures.update(await measure_baseline(pki, n, args.changes, args.gap_ms / 1000, work))
                    base = figures[f"policy.baseline.p99_ms.n{n}"]
                    figures[f"policy.ratio_p99.n{n}"] = figures[f"policy.propagation.p99_ms.n{n}"] / max(base, 1e-3)
                    if f"policy.revocation.p99_ms.n{n}" in figures:
                        figures[f"policy.revocation.ratio_p99.n{n}"] = (
                            figures[f"policy.revocation.p99_ms.n{n}"] / max(base, 1e-3))
        finally:
            await cp.stop(0)
    figures["policy.cpu_count"] = float(os.cpu_count() or 0)
    return {k: round(v, 3) for k, v in figures.items()}

