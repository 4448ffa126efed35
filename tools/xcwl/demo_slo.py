"""The demo's last step: the live SLO report, as ``xcwl report slo`` prints it, every figure against its target."""

from __future__ import annotations

import asyncio
import time

from .demo_world import Demo
from .report_cmd import slo_text

WINDOW_S = 3600
WAIT_S = 15.0
"""The importers report their checkouts at most ~5 s after the last one; wait that long for the pair lines."""


async def slo_report(demo: Demo) -> None:
    deadline = time.monotonic() + WAIT_S
    async with demo.client() as client:
        while True:
            report = await client.slo_report(WINDOW_S)
            pairs = [f for f in report.figures if f.name == "confirmation_p99" and f.scope != "global"]
            if pairs or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    demo.out(f"xcwl report slo --window 1h:\n{slo_text(report)}")
