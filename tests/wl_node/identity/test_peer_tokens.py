"""The importer's token cache: warm ahead of time, no I/O on the checkout path, survives a CP outage."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest

from tests.cp_server.identity.harness import IdentityCp
from tests.cp_server.identity.rpc import mtls_stub
from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.identity.peer_tokens import PeerToken, PeerTokenCache, fetch_via_cp
from xporty.cp.v1 import identity_service_pb2 as pb
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import ManualClock
from xwl_runtime.errors import RemoteError
from xwl_runtime.identity import Identity
from xwl_runtime.tokens import TokenVerifier

IMPORTER = Identity.wl("wl-b")


async def test_tokens_are_prefetched_and_outlive_a_cp_outage(identity_cp: IdentityCp) -> None:
    await identity_cp.register_wl("wl-a", "wl-b")
    material = identity_cp.pki.material(IMPORTER)
    async with mtls_stub(identity_cp.mtls_target, material) as stub:
        jwks = list((await stub.GetJwks(pb.GetJwksRequest(), timeout=10)).keys)
    cp = CpChannel(cp_channel_factory(identity_cp.mtls_target, reconnect_cap_s=0.5), material, identity=IMPORTER)
    clock = ManualClock(dt.datetime.now(dt.UTC))
    cache = PeerTokenCache(fetch_via_cp(cp, timeout_s=1.0), clock, poll_interval=0.02,
                           backoff=Backoff(base_s=0.01, cap_s=0.05))
    cache.want(["wl-a"])
    stop = asyncio.Event()
    loop = asyncio.create_task(cache.run(stop))
    try:
        for _ in range(500):
            if cache.token_for("wl-a") is not None:
                break
            await asyncio.sleep(0.01)
        first = cache.token_for("wl-a")
        assert first is not None
        assert TokenVerifier(lambda: jwks, "wl-a", clock).verify(first, IMPORTER).subject == IMPORTER
        assert cache.token_for("wl-c") is None  # never fetched on the fast path

        await identity_cp.server.stop(0)  # the CP goes away
        clock.advance(4 * 60)  # inside the refresh window: refresh fails, the cached token still serves
        await asyncio.sleep(0.2)
        assert cache.token_for("wl-a") == first
        clock.advance(55)  # less than min_remaining left: no longer handed out
        assert cache.token_for("wl-a") is None
        with pytest.raises(RemoteError) as err:
            await cache.get("wl-a")
        assert err.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
        await cp.close()


async def test_concurrent_misses_share_one_fetch() -> None:
    clock = ManualClock()
    calls = 0
    gate = asyncio.Event()

    async def fetch(exporter: str) -> PeerToken:
        nonlocal calls
        calls += 1
        await gate.wait()
        return PeerToken(f"tok-{exporter}-{calls}", clock.now() + dt.timedelta(minutes=5))

    cache = PeerTokenCache(fetch, clock)
    waiters = [asyncio.create_task(cache.get("wl-a")) for _ in range(10)]
    await asyncio.sleep(0.01)
    gate.set()
    assert set(await asyncio.gather(*waiters)) == {"tok-wl-a-1"}
    assert calls == 1
    assert cache.token_for("wl-a") == "tok-wl-a-1"
    cache.want([])  # a partner no longer wanted is dropped
    assert cache.token_for("wl-a") is None
