"""The subscriber side of ``xcwl bench policy``, run as its own process (``python -m xcwl.bench._subscribers``).

Started with one JSON argument ``{"mode", "target", "pki", "wl_ids", "state_dir"}``:

* ``mode == "policy"``: one real policy agent per WL id (``wl_node.policy.agent.PolicyAgent`` with its own
  ``PolicyState``, last-known-good store and mTLS channel, exactly as a node builds them), streaming from the CP;
* ``mode == "baseline"``: one bare grpc.aio server-streaming call per WL id over the same kind of mTLS channel.

It prints one line per event on stdout, ``<kind> <index> <key> <time_ns>``: kind ``a`` when a view was applied
(``PolicyState.apply`` ran: the node serves it) or a baseline message was received, kind ``d`` when the agent's
last-known-good file holding that version was fsynced (policy mode only; the agent reports "applied" to the CP
only after that). Key is the policy version or the baseline's sequence number, time is ``time.time_ns()`` (wall
clock; the parent compares it with its own wall clock on the same host). It stops when stdin closes.
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

from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.policy.agent import PolicyAgent
from wl_node.policy.lkg import LastKnownGoodStore
from wl_node.policy.state import PolicyState
from wl_node.settings import NodeSettings
from xporty.cp.v1 import policy_pb2
from xwl_runtime.clock import SystemClock
from xwl_runtime.identity import Identity
from xwl_runtime.logs import configure_logging
from xwl_runtime.pki import PkiDir
from xwl_runtime.tls import TlsMaterial, secure_channel

BASELINE_METHOD = "/xcwl.bench.Push/Watch"
SEQ = struct.Struct(">Q")


APPLIED = "a"
DURABLE = "d"


def emit(kind: str, index: int, key: int) -> None:
    # One short line per event; flushed at once so the parent sees it without delay.
    sys.stdout.write(f"{kind} {index} {key} {time.time_ns()}\n")
    sys.stdout.flush()


class _TimedLkg(LastKnownGoodStore):
    """The node's last-known-good store, telling when each new version is durable."""

    def __init__(self, state_dir: Path, wl_id: str, index: int) -> None:
        super().__init__(state_dir, wl_id)
        self._index = index
        self._durable = 0

    async def save(self, view: policy_pb2.PolicyView, confirmed_at: dt.datetime, now: dt.datetime) -> None:
        await super().save(view, confirmed_at, now)
        if view.version > self._durable:  # not the periodic rewrites of the confirmation time
            self._durable = view.version
            emit(DURABLE, self._index, view.version)


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
            emit(APPLIED, index, view.version)

        state.add_listener(on_apply)
        identity = Identity.wl(wl_id)
        channel = CpChannel(cp_channel_factory(settings.cp_target, reconnect_cap_s=1.0),
                            TlsMaterial.from_pki(pki, identity), identity=identity)
        agents.append((PolicyAgent(settings, state, channel, clock, _TimedLkg(settings.state_dir, wl_id, index)),
                       channel))
    tasks = [asyncio.create_task(agent.run(stop)) for agent, _ in agents]
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    for _, channel in agents:
        await channel.close()


async def _baseline_stream(index: int, target: str, material: TlsMaterial) -> None:
    async with secure_channel(target, material, expected=Identity.cp()) as channel:
        # wait_for_ready: on a loaded machine a few of N simultaneous handshakes fail once; retry like the agents do.
        method: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(BASELINE_METHOD)
        call = method(b"", wait_for_ready=True)
        async for message in call:
            emit(APPLIED, index, SEQ.unpack_from(message)[0])


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
