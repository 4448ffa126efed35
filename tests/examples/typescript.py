"""Building and running the TypeScript example (examples/typescript) from tests: npm ci once, tsc once per session."""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.pki import PkiFixture
from xwl_runtime.identity import Identity, pinned_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "typescript"
DIST = PACKAGE / "dist" / "examples" / "typescript" / "src"


@functools.cache
def build() -> Path:
    """Install the pinned dependencies when missing (``npm ci``), compile with tsc; the compiled scripts' dir."""
    npm = shutil.which("npm")
    assert npm, "npm is required (apt-get install nodejs npm)"
    if not (PACKAGE / "node_modules" / ".bin" / "tsc").exists():
        subprocess.run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=PACKAGE, check=True,
                       capture_output=True, timeout=300)
    result = subprocess.run([str(PACKAGE / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], cwd=PACKAGE,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return DIST


def app_env(pki: PkiFixture, node_port: int, app: Identity, **extra: str) -> dict[str, str]:
    """The example's environment for ``app`` calling its own WL's node on ``node_port``."""
    ca, cert, key = pki.files(app)
    env = {"XCWL_NODE": f"127.0.0.1:{node_port}", "XCWL_CA": str(ca), "XCWL_CERT": str(cert), "XCWL_KEY": str(key),
           "XCWL_PINNED_NAME": pinned_name(Identity.wl(app.wl_id)), "PATH": "/usr/bin:/bin"}
    env.update(extra)
    return env


async def start(script: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    node = shutil.which("node")
    assert node, "node is required"
    return await asyncio.create_subprocess_exec(node, str(build() / script), env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def read_step(proc: asyncio.subprocess.Process, timeout: float = 60) -> dict[str, Any]:
    """The next JSON line the script printed (fails with its stderr when it ended instead)."""
    assert proc.stdout is not None and proc.stderr is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        await proc.wait()
        raise AssertionError(f"the example ended ({proc.returncode}): {(await proc.stderr.read()).decode()}")
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed
