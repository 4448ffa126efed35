"""One ingest run of ``xcwl bench dashboard``, as its own process (``python -m xcwl.bench._rollup_ingest``), so that
the run with rollups and the run without can go at the same time, each CP in its own process (GIL, event loop),
and meet the same load of a shared machine.

Started with one JSON argument ``{"pki", "url", "events", "batch", "rollups"}``: it starts the risk bench's CP on
``url`` (``xcwl.bench.risk``, the rollups kept or not), seeds its pairs, starts its publishers
(``xcwl.bench._publishers``, identities already issued in ``pki``), prints ``ready`` and waits for a line on stdin.
Then the publishers go, and it prints one JSON line: the publishers' figures with ``events_per_s`` and
``cp_cpu_s`` (this process's CPU meanwhile, verification workers excluded).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from cp_server import risk_services as risk_component
from xwl_runtime.pki import PkiDir

from . import risk as risk_bench

WL_IDS = [f"bench-{i:02d}" for i in range(4)]
"""Two pairs, each node publishing its own exports and finalizing its partner's (as the risk bench)."""


def _build_with(rollups: bool) -> None:
    original = risk_component.build

    def build(ctx: Any, settings: Any = None, *, slo: Any) -> Any:
        component, parts = original(ctx, settings, slo=slo)
        if not rollups:
            parts.engine.rollups = None
        return component, parts

    vars(risk_bench)["build"] = build  # the risk bench's CP, with the rollups on or off


async def _run(config: dict[str, Any]) -> dict[str, float]:
    _build_with(bool(config["rollups"]))
    pki = PkiDir(Path(config["pki"]))
    async with risk_bench._running_cp(pki, str(config["url"])) as cp:
        await risk_bench._seed(cp.ctx, WL_IDS, "1000000000000")
        if cp.parts.verifier is not None:
            await cp.parts.verifier.start()  # steady state: the verification workers are up
        publishers = {"target": cp.target, "pki": str(pki.root), "events": int(config["events"]) // len(WL_IDS),
                      "batch": int(config["batch"]), "nodes": [[w, WL_IDS[i ^ 1]] for i, w in enumerate(WL_IDS)]}
        return await risk_bench.drive_publishers(publishers, _wait_for_go)


async def _wait_for_go() -> None:
    """Tell the bench this side is ready, then start on its signal (both variants start together)."""
    print("ready", flush=True)
    go = await asyncio.wait_for(asyncio.to_thread(sys.stdin.readline), 600)
    if not go:
        raise RuntimeError("no go from the bench")


def main() -> None:
    print(json.dumps(asyncio.run(_run(json.loads(sys.argv[1])))), flush=True)


if __name__ == "__main__":
    main()
