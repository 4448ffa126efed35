"""The subscriber side of ``xcwl bench policy``, run as its own process (``python -m xcwl.bench._subscribers``).

Started with one JSON argument ``{"mode", "target", "pki", "wl_ids", "state_dir"}``:

* ``mode == "policy"``: one real policy agent per WL id (``wl_node.policy.agent.PolicyAgent`` with its own
  ``PolicyState``, last-known-good store and mTLS channel, exactly as a node builds them), streaming from the CP;
* ``mode == "baseline"``: one bare grpc.aio server-streaming call per WL id over the same kind of mTLS channel.

For every view applied (policy) or message received (baseline) it prints ``<index> <key> <time_ns>`` on stdout,
where key is the policy version or the baseline's sequence number and time is ``time.time_ns()`` (wall clock; the
parent compares it with its own wall clock on the same host). It stops when stdin closes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from xporty.cp.v1 import policy_pb2

from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.policy.agent import PolicyAgent
from wl_node.policy.lkg import LastKnownGoodStore
from wl_node.policy.state import PolicyState
from wl_node.settings import NodeSettings
from xwl_runtime.clock import SystemClock
from xwl_runtime.identity import Identity
from xwl_runtime.logs import configure_logging
from xwl_runtime.pki import PkiDir
from xwl_runtime.tls import TlsMaterial, secure_channel

BASELINE_METHOD = "/xcwl.bench.Push/Watch"
SEQ = struct.Struct(">Q")


def emit(index: int, key: int) -> None:
    # One short line per event; flushed at once so the parent sees it without delay.
    sys.stdout.write(f"{index} {key} {time.time_ns()}\n")
    sys.stdout.flush()


async def _stdin_closed() -> None:
    await asyncio.to_thread(sys.stdin.buffer.read)


async def run_agents(config: dict[str, Any], stop: asyncio.Event) -> None:
    pki = PkiDir(Path(config["pki"]))
    clock = SystemClock()
    agents: list[tuple[PolicyAgent, CpChannel]] = []
    for index, wl_id in enumerate(config["wl_ids"]):
        settings = NodeSettings(
            wl_id=wl_id, pki_dir=pki.root, cp_target=config["target"], db_url="sqlite://",
            state_dir=Path(config["state_dir"]), reconnect_cap=dt.timedelta(seconds=1),
        )
        state = PolicyState(wl_id, clock, settings.policy_max_staleness)

        async def on_apply(view: policy_pb2.PolicyView, index: int = index) -> None:
            emit(index, view.version)

        state.add_listener(on_apply)
        identity = Identity.wl(wl_id)
        channel = CpChannel(cp_channel_factory(settings.cp_target, reconnect_cap_s=1.0),
                            TlsMaterial.from_pki(pki, identity), identity=identity)
        agents.append((PolicyAgent(settings, state, channel, clock, LastKnownGoodStore(settings.state_dir, wl_id)),
                       channel))
    tasks = [asyncio.create_task(agent.run(stop)) for agent, _ in agents]
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    for _, channel in agents:
        await channel.close()


async def _baseline_stream(index: int, target: str, material: TlsMaterial) -> None:
    async with secure_channel(target, material) as channel:
        call = channel.unary_stream(BASELINE_METHOD)(b"")
        async for message in call:
            emit(index, SEQ.unpack_from(message)[0])


async def run_baseline(config: dict[str, Any], stop: asyncio.Event) -> None:
    pki = PkiDir(Path(config["pki"]))
    tasks = [
        asyncio.create_task(_baseline_stream(i, config["target"], TlsMaterial.from_pki(pki, Identity.wl(wl_id))))
        for i, wl_id in enumerate(config["wl_ids"])
    ]
    await stop.wait()
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, grpc.aio.AioRpcError) and result.code() is not grpc.StatusCode.CANCELLED:
            print(f"baseline stream failed: {result.code().name}", file=sys.stderr)


async def main(config: dict[str, Any]) -> None:
    configure_logging("ERROR")  # this process is an edge: its stdout is the data channel, stderr only for errors
    stop = asyncio.Event()
    runner = run_agents if config["mode"] == "policy" else run_baseline
    work = asyncio.create_task(runner(config, stop))
    await _stdin_closed()
    stop.set()
    await work


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
