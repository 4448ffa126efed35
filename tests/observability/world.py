"""A CP and three WL nodes as separate ``xcwl`` processes (the demo's first steps), for observability tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from xcwl import demo, demo_trade
from xcwl.demo_world import Demo, free_port
from xporty.node.v1 import storefront_pb2

SETUP = (demo.make_pki, demo.start_cp, demo.register_wls, demo.start_nodes, demo.set_policies,
         demo_trade.publish_offers)


@contextlib.asynccontextmanager
async def running_world(root: Path, *, metrics: bool = False) -> AsyncIterator[tuple[Demo, dict[str, int]]]:
    """The demo's world up to the published, synced catalogs; with ``metrics`` every process gets a scrape port."""
    world = Demo(root=root, out=lambda _line: None)
    ports: dict[str, int] = {}
    if metrics:
        for name in ("cp", "wl-a", "wl-b", "wl-c"):
            ports[name] = free_port()
            world.serve_flags[name] = ["--metrics-listen", f"127.0.0.1:{ports[name]}"]
    try:
        for step in SETUP:
            await step(world)
        yield world, ports
    finally:
        problems = await demo.stop_all(world)
        assert not problems, problems


async def buy_many(world: Demo, importer: str, offer_id: str, count: int, prefix: str) -> list[storefront_pb2.Checkout]:
    """``count`` purchases of one unit, eight at a time, each decided (confirmed or refused for stock)."""
    results: list[storefront_pb2.Checkout] = []
    async with world.app(importer) as app:
        for start in range(0, count, 8):
            batch = range(start, min(count, start + 8))
            results += await asyncio.gather(*(demo_trade.buy(app, offer_id, f"{prefix}-{i}") for i in batch))
    return results
