"""A real CP process for the security tests: ``xcwl cp serve`` as a subprocess, as an operator starts it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.pki import PkiFixture
from tests.xcwl.runner import clean_env
from xcwl.demo_world import free_port
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

START_TIMEOUT_S = 60.0


@dataclass
class CpProcess:
    """A running ``xcwl cp serve`` child: its pid, listeners and log."""

    popen: asyncio.subprocess.Process
    target: str
    enroll_target: str
    log: Path

    def rss_bytes(self) -> int:
        """Resident set size of the CP process now (Linux /proc)."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("VmRSS missing from /proc status")


async def _wait_serving(proc: CpProcess, pki: PkiFixture) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with secure_channel(proc.target, pki.material(Identity.ops("alice")), expected=Identity.cp()) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.popen.returncode is not None:
                raise AssertionError(f"CP exited with {proc.popen.returncode}: {proc.log.read_text()[-2000:]}")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise AssertionError(f"CP not SERVING after {START_TIMEOUT_S} s: {proc.log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def cp_process(pki: PkiFixture, tmp_path: Path, extra: Sequence[str] = ()) -> AsyncIterator[CpProcess]:
    """Start ``xcwl cp serve`` on free loopback ports with a SQLite store; stop it with SIGTERM afterwards."""
    target, enroll_target = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = tmp_path / "cp.log"
    with log.open("wb") as fh:
        popen = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "xcwl.cli", "cp", "serve", "--pki", str(pki.dir.root),
            "--db", f"sqlite:///{tmp_path / 'cp.db'}", "--listen", target, "--enroll-listen", enroll_target, *extra,
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env(),
        )
    proc = CpProcess(popen, target, enroll_target, log)
    try:
        await _wait_serving(proc, pki)
        yield proc
    finally:
        popen.terminate()
        try:
            await asyncio.wait_for(popen.wait(), 15)
        except TimeoutError:
            popen.kill()
            await popen.wait()
