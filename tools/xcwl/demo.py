"""``xcwl demo``: a CP and three WL nodes on loopback, each its own process, shown doing their main job.

Steps (each a function of ``Demo``; later features add steps to ``STEPS``):

1. a fresh PKI in a temp dir (CA, CP certificate, an operator certificate);
2. the CP (``xcwl cp serve``, SQLite) on free loopback ports, waited for until health says SERVING;
3. the WLs registered (wl-a/XPY-A, wl-b/XPY-B, wl-c/XPY-C), one bootstrap token each;
4. three nodes (``xcwl wl serve``) that enroll online with their token, waited for until SERVING;
5. pair policies set (every pair ACTIVE with an FX, a limit, both directions open); every node applies them;
6. one change (FX of wl-a/wl-b and wl-b/wl-c PAUSED), shown applied by every node (ListNodeStatus polled until
   applied == current) with the time it took;
7. everything stopped with SIGTERM and waited for; the exit code is 0 only if every process exited cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from xporty.cp.v1 import admin_service_pb2, policy_pb2, registry_pb2

from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir
from xwl_runtime.tls import TlsMaterial

from .errors import CliError
from .ops_client import OpsClient
from .render import node_status_table, pairs_table

OPERATOR = "demo"
START_TIMEOUT_S = 30.0
APPLY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.02
RPC_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DemoWl:
    wl_id: str
    name: str
    currency: str
    reference_rate: str


WLS = (
    DemoWl("wl-a", "Market A", "XPY-A", "1"),
    DemoWl("wl-b", "Market B", "XPY-B", "0.8"),
    DemoWl("wl-c", "Market C", "XPY-C", "2"),
)
PAIRS = (("wl-a", "wl-b", "1.25"), ("wl-a", "wl-c", "0.5"), ("wl-b", "wl-c", "0.4"))


def free_port() -> int:
    """A port free right now on loopback (the process binding it comes a moment later; collisions are unlikely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A child process started by the demo, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Demo:
    """State shared by the steps."""

    root: Path
    out: Callable[[str], None] = print
    pki: PkiDir = field(init=False)
    cp_port: int = 0
    enroll_port: int = 0
    node_ports: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.pki = PkiDir(self.root / "cp-pki")

    @property
    def cp_target(self) -> str:
        return f"127.0.0.1:{self.cp_port}"

    def operator(self) -> TlsMaterial:
        return TlsMaterial.from_pki(self.pki, Identity.ops(OPERATOR))

    def client(self, target: str | None = None) -> contextlib.AbstractAsyncContextManager[OpsClient]:
        return OpsClient.connect(target or self.cp_target, self.operator(), timeout=RPC_TIMEOUT_S)

    def spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.root / f"{name}.log"
        with log.open("wb") as fh:  # the child keeps its own descriptor
            popen = subprocess.Popen(
                [sys.executable, "-m", "xcwl.cli", "--log-level", "INFO", *argv],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    async def wait_serving(self, proc: Proc, target: str) -> None:
        """Poll health until SERVING; fail early if the process died."""
        deadline = time.monotonic() + START_TIMEOUT_S
        async with self.client(target) as client:
            while True:
                if proc.popen.poll() is not None:
                    raise CliError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
                with contextlib.suppress(CliError):  # not listening yet, or NOT_SERVING
                    if await client.health() == "SERVING":
                        return
                if time.monotonic() > deadline:
                    raise CliError(f"{proc.name} not SERVING after {START_TIMEOUT_S:.0f} s:\n{proc.tail()}")
                await asyncio.sleep(0.05)

    async def wait_applied(self, version: int) -> tuple[list[admin_service_pb2.NodeStatus], float]:
        """Poll ListNodeStatus until every node applied ``version`` (or later) and is in sync; (table, seconds)."""
        start = time.monotonic()
        async with self.client() as client:
            while True:
                nodes = await client.node_status()
                if nodes and all(n.applied_version >= version and n.applied_version == n.current_version
                                 for n in nodes):
                    return nodes, time.monotonic() - start
                if time.monotonic() - start > APPLY_TIMEOUT_S:
                    raise CliError(f"nodes did not apply version {version} in {APPLY_TIMEOUT_S:.0f} s:\n"
                                   + node_status_table(nodes))
                await asyncio.sleep(POLL_S)

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.started:5.1f}s]"


# --- steps ---------------------------------------------------------------------------------------------------


async def make_pki(demo: Demo) -> None:
    demo.pki.init_ca()
    demo.pki.issue(Identity.ops(OPERATOR))
    demo.out(f"CA, CP and operator certificates in {demo.pki.root}")


async def start_cp(demo: Demo) -> None:
    demo.cp_port, demo.enroll_port = free_port(), free_port()
    proc = demo.spawn("cp", [
        "cp", "serve", "--pki", str(demo.pki.root), "--db", f"sqlite:///{demo.root / 'cp.db'}",
        "--listen", demo.cp_target, "--enroll-listen", f"127.0.0.1:{demo.enroll_port}",
    ])
    await demo.wait_serving(proc, demo.cp_target)
    demo.out(f"CP pid {proc.popen.pid} SERVING: mTLS {demo.cp_target}, enrollment 127.0.0.1:{demo.enroll_port}")


async def register_wls(demo: Demo) -> None:
    async with demo.client() as client:
        for wl in WLS:
            demo.node_ports[wl.wl_id] = free_port()
            await client.register_wl(registry_pb2.WhiteLabel(
                wl_id=wl.wl_id, name=wl.name, currency=wl.currency, currency_decimals=2,
                reference_rate=wl.reference_rate, trader_endpoint=f"127.0.0.1:{demo.node_ports[wl.wl_id]}",
            ))
            demo.tokens[wl.wl_id] = (await client.create_bootstrap_token(wl.wl_id)).token
            demo.out(f"registered {wl.wl_id} ({wl.name}, {wl.currency}) and created its one-time bootstrap token")


async def start_nodes(demo: Demo) -> None:
    waits = []
    for wl in WLS:
        node_pki = demo.root / wl.wl_id / "pki"
        node_pki.mkdir(parents=True)
        shutil.copy(demo.pki.ca_cert, node_pki / "ca.crt")  # a node starts with the CA certificate only
        target = f"127.0.0.1:{demo.node_ports[wl.wl_id]}"
        proc = demo.spawn(wl.wl_id, [
            "wl", "serve", "--wl-id", wl.wl_id, "--pki", str(node_pki), "--cp", demo.cp_target,
            "--cp-enroll", f"127.0.0.1:{demo.enroll_port}", "--bootstrap-token", demo.tokens[wl.wl_id],
            "--db", f"sqlite:///{demo.root / wl.wl_id / 'node.db'}", "--listen", target,
            "--state-dir", str(demo.root / wl.wl_id / "state"),
        ])
        waits.append(demo.wait_serving(proc, target))
    await asyncio.gather(*waits)
    for wl in WLS:
        demo.out(f"{wl.wl_id} enrolled online (spiffe://xporty/wl/{wl.wl_id}) and SERVING on "
                 f"127.0.0.1:{demo.node_ports[wl.wl_id]}")


async def set_policies(demo: Demo) -> None:
    version = 0
    async with demo.client() as client:
        for a, b, fx in PAIRS:
            resp = await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
                wl_a=a, wl_b=b, status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, fx_rate=fx, imbalance_limit="10000",
                force_fx=True, reason="demo: open the pair",
            ))
            for exporter, importer in ((a, b), (b, a)):
                done = await client.update_direction(admin_service_pb2.UpdateDirectionPolicyRequest(
                    exporter_wl=exporter, importer_wl=importer, import_enabled=True, destination_visible=True,
                    reason="demo: open the direction",
                ))
                version = max(version, resp.version, done.version)
        pairs = (await client.list_pairs()).policies
    demo.out(pairs_table(pairs))
    nodes, took = await demo.wait_applied(version)
    demo.out(f"every node applied policy version {version} ({took * 1000:.0f} ms after the last change):")
    demo.out(node_status_table(nodes))


async def change_policies(demo: Demo) -> None:
    async with demo.client() as client:
        fx = await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
            wl_a="wl-a", wl_b="wl-b", fx_rate="1.3", reason="demo: FX moves"))
        paused = await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
            wl_a="wl-b", wl_b="wl-c", status=policy_pb2.RELATIONSHIP_STATUS_PAUSED, reason="demo: pause b-c"))
    demo.out(f"changed: wl-a/wl-b FX {fx.policy.fx_rate} (fx_version {fx.policy.fx_version}, policy version "
             f"{fx.version}); wl-b/wl-c PAUSED (policy version {paused.version})")
    nodes, took = await demo.wait_applied(paused.version)
    demo.out(f"every node applied policy version {paused.version} within {took * 1000:.0f} ms:")
    demo.out(node_status_table(nodes))


Step = Callable[[Demo], Awaitable[None]]
STEPS: list[tuple[str, Step]] = [
    ("fresh PKI", make_pki),
    ("control plane", start_cp),
    ("WL registry and bootstrap tokens", register_wls),
    ("WL nodes (online enrollment)", start_nodes),
    ("pair policies", set_policies),
    ("a policy change reaches every node", change_policies),
]


async def stop_all(demo: Demo) -> list[str]:
    """SIGTERM the nodes, then the CP (so no node sees its CP vanish first); problems found, if any."""
    problems = []
    for proc in [*reversed(demo.procs)]:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.popen.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            await asyncio.to_thread(proc.popen.wait)
            problems.append(f"{proc.name} did not stop within {STOP_TIMEOUT_S:.0f} s; killed")
            continue
        if code != 0:
            problems.append(f"{proc.name} exited with {code}:\n{proc.tail()}")
    return problems


async def run_demo(root: Path, out: Callable[[str], None] = print) -> int:
    demo = Demo(root=root, out=out)
    try:
        for number, (title, step) in enumerate(STEPS, start=1):
            out(f"\n{demo.elapsed()} {number}. {title}")
            await step(demo)
    finally:
        out(f"\n{demo.elapsed()} stopping {len(demo.procs)} processes (SIGTERM)")
        problems = await stop_all(demo)
    if problems:
        raise CliError("; ".join(problems))
    out(f"{demo.elapsed()} all processes exited cleanly; demo done")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="a CP and three WL nodes on loopback: enrollment, policies, propagation")
    demo.add_argument("--workdir", help="keep PKI, databases and logs here instead of a temp dir removed at the end")
    demo.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.workdir:
        root = Path(args.workdir)
        root.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_demo(root))
    with tempfile.TemporaryDirectory(prefix="xcwl-demo-") as tmp:
        return asyncio.run(run_demo(Path(tmp)))
