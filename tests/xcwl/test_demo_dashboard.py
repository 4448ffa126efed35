"""``xcwl demo --dashboard`` as a newcomer runs it: after the steps the CP keeps serving, the printed login link opens
a session over HTTPS (the demo CA's certificate), the overview shows the demo's trade (GMV > 0), and Ctrl-C stops
every process cleanly."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx

from cp_server.dashboard.access import COOKIE
from tests.xcwl.runner import clean_env

DEMO_BUDGET_S = 150.0
"""The demo's own budget (``test_demo.DEMO_BUDGET_S``) plus the dashboard's start and the nodes' stop."""
STOP_BUDGET_S = 30.0


async def _link(stdout: asyncio.StreamReader, seen: list[str]) -> str:
    """The login link: the first line that is an https URL of the dashboard's login path."""
    while line := (await stdout.readline()).decode():
        seen.append(line)
        if line.startswith("https://127.0.0.1:") and "/login/" in line:
            return line.strip()
    raise AssertionError("the demo ended without printing a login link:\n" + "".join(seen))


async def test_demo_dashboard_serves_the_demo_trade_after_the_steps(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    with (tmp_path / "stderr.log").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "xcwl.cli", "demo", "--dashboard", "--workdir", str(workdir), env=clean_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        assert proc.stdout is not None
        seen: list[str] = []
        try:
            link = await asyncio.wait_for(_link(proc.stdout, seen), DEMO_BUDGET_S)
            base = link[:link.index("/login/")]
            tls = ssl.create_default_context(cafile=str(workdir / "cp-pki" / "ca.crt"))
            tls.check_hostname = False  # the CP's certificate names its SPIFFE identity; the CA is checked
            async with httpx.AsyncClient(verify=tls, timeout=10.0) as http:
                assert (await http.get(f"{base}/api/overview")).status_code == 401
                opened = await http.get(link)
                assert opened.status_code == 200, opened.text
                cookie = opened.cookies[COOKIE]
                http.cookies.clear()
                overview = await http.get(f"{base}/api/overview", headers={"cookie": f"{COOKIE}={cookie}"})
                assert overview.status_code == 200, overview.text
                body = overview.json()
                assert Decimal(body["figures"]["gmv_this_month"]) > 0, body
                months = body["tables"]["gmv_by_month"]
                assert sum(Decimal(row[1]) for row in months["rows"]) > 0, months
                assert (await http.get(link)).status_code != 200  # the link was one-time
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)  # what "Ctrl-C stops the CP" asks of the user
            rest, _ = await asyncio.wait_for(proc.communicate(), STOP_BUDGET_S)
            assert time.monotonic() - started < STOP_BUDGET_S
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    out = "".join(seen) + rest.decode()
    assert proc.returncode == 0, out + (tmp_path / "stderr.log").read_text()
    assert "all processes exited cleanly" in out
