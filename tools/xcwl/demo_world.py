"""What the ``xcwl demo`` steps share: the demo's WLs, pairs and offers, its child processes, and the ``Demo`` state
with the clients every step uses (operator → CP, WL app → its node's local API, direct reads of node stores)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from xcwl_sdk import ClientConfig, RetryConfig, StorefrontClient
from xporty.cp.v1 import admin_service_pb2
from xwl_runtime.db import create_engine
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir
from xwl_runtime.tls import TlsMaterial

from .errors import CliError
from .ops_client import OpsClient
from .render import node_status_table

OPERATOR = "demo"
APP = "shop"
"""Each WL's own service calling its node's local API: ``spiffe://xporty/wl/<wl>/app/shop``."""
START_TIMEOUT_S = 30.0
APPLY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.02
RPC_TIMEOUT_S = 5.0
APP_CLIENT = ClientConfig(timeout_s=RPC_TIMEOUT_S, checkout_timeout_s=20.0,
                          retry=RetryConfig(max_attempts=400, initial_backoff_s=0.05, max_backoff_s=0.05))
"""The WL apps' SDK config: a member retries a checkout with its key (no token yet, circuit open, key in flight)
for up to 20 s, every 50 ms at most."""


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
CURRENCY = {wl.wl_id: wl.currency for wl in WLS}
REFERENCE_RATE = {wl.wl_id: wl.reference_rate for wl in WLS}
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

    async def stop(self, *, killed_ok: bool = False, tail_lines: int = 15) -> str | None:
        """SIGTERM the process and wait for it; the problem, if any (``killed_ok``: a process that already ended
        by SIGKILL, as a failover test kills it, is no problem)."""
        if self.popen.poll() is not None:
            code = self.popen.returncode
            if code == 0 or (killed_ok and code == -signal.SIGKILL):
                return None
        else:
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.popen.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            await asyncio.to_thread(self.popen.wait)
            return f"{self.name} did not stop within {STOP_TIMEOUT_S:.0f} s; killed"
        return f"{self.name} exited with {code}:\n{self.tail(tail_lines)}" if code != 0 else None


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
    notes: dict[str, Any] = field(default_factory=dict)
    """What one step leaves for a later one (e.g. the catalog before a policy change, to show re-pricing)."""
    serve_flags: dict[str, list[str]] = field(default_factory=dict)
    """Extra ``serve`` flags per process name (``cp``, ``wl-a`` …), e.g. ``--metrics-listen``."""

    def __post_init__(self) -> None:
        self.pki = PkiDir(self.root / "cp-pki")

    @property
    def cp_target(self) -> str:
        return f"127.0.0.1:{self.cp_port}"

    @property
    def cp_db(self) -> str:
        return f"sqlite:///{self.root / 'cp.db'}"

    def node_target(self, wl_id: str) -> str:
        return f"127.0.0.1:{self.node_ports[wl_id]}"

    def node_db(self, wl_id: str) -> str:
        return f"sqlite:///{self.root / wl_id / 'node.db'}"

    def operator(self) -> TlsMaterial:
        return TlsMaterial.from_pki(self.pki, Identity.ops(OPERATOR))

    def client(
        self, target: str | None = None, expected: Identity | None = None
    ) -> contextlib.AbstractAsyncContextManager[OpsClient]:
        """An operator client of the CP (or of the server at ``target`` proving ``expected``)."""
        return OpsClient.connect(target or self.cp_target, self.operator(), timeout=RPC_TIMEOUT_S, expected=expected)

    def app(self, wl_id: str) -> contextlib.AbstractAsyncContextManager[StorefrontClient]:
        """WL ``wl_id``'s own service on its node's local API through the SDK (its certificate issued on first use)."""
        identity = Identity.app(wl_id, APP)
        if not self.pki.has(identity):
            self.pki.issue(identity)
        return StorefrontClient.connect(self.node_target(wl_id), TlsMaterial.from_pki(self.pki, identity),
                                        node_wl=wl_id, config=APP_CLIENT)

    @contextlib.asynccontextmanager
    async def store(self, url: str) -> AsyncIterator[AsyncEngine]:
        """Read access to a running process's SQLite store (the demo shows stock, orders and ledgers from it)."""
        engine = create_engine(url)
        try:
            yield engine
        finally:
            await engine.dispose()

    def spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.root / f"{name}.log"
        with log.open("wb") as fh:  # the child keeps its own descriptor
            popen = subprocess.Popen(
                [sys.executable, "-m", "xcwl.cli", "--log-level", "INFO", *argv, *self.serve_flags.get(name, [])],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    async def wait_serving(self, proc: Proc, target: str, expected: Identity | None = None, *,
                           timeout_s: float = START_TIMEOUT_S, interval_s: float = 0.05) -> None:
        """Poll health of ``expected`` (default the CP) at ``target`` until SERVING; fail early if the process died."""
        deadline = time.monotonic() + timeout_s
        async with self.client(target, expected) as client:
            while True:
                if proc.popen.poll() is not None:
                    raise CliError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
                with contextlib.suppress(CliError):  # not listening yet, or NOT_SERVING
                    if await client.health() == "SERVING":
                        return
                if time.monotonic() > deadline:
                    raise CliError(f"{proc.name} not SERVING after {timeout_s:.0f} s:\n{proc.tail()}")
                await asyncio.sleep(interval_s)

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


async def eventually(check: Callable[[], object], what: str, timeout: float) -> None:
    """Await ``check()`` (sync or async, truthy = done) every POLL_S until true; CliError naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise CliError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(max(POLL_S, 0.05))
