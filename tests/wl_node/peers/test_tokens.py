"""Token cache: fetched ahead of expiry from the CP, never on the caller's path, used until expiry when the CP is
down."""

from __future__ import annotations

import datetime as dt

from tests.support.pki import PkiFixture
from tests.wl_node.checkout.harness import TokenIssuer, start_identity_cp
from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.peers.tokens import TokenCache
from xwl_runtime.clock import ManualClock
from xwl_runtime.identity import Identity


async def test_refresh_ahead_of_expiry_and_cached_token_used_while_cp_is_down(pki: PkiFixture) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    cp = await start_identity_cp(pki, TokenIssuer(clock=clock))
    channel = CpChannel(cp_channel_factory(cp.target, reconnect_cap_s=0.3), pki.material(Identity.wl("wl-b")),
                        identity=Identity.wl("wl-b"))
    cache = TokenCache(channel, clock, audiences=lambda: ["wl-a"])
    try:
        assert cache.get("wl-a") is None  # never blocks: nothing cached yet
        assert await cache.refresh_due()
        first = cache.get("wl-a")
        assert first is not None and cp.issuer.calls == 1
        assert await cache.refresh_due() and cp.issuer.calls == 1  # fresh: not due
        clock.advance(151)  # past half of the 5-minute lifetime: due, refreshed ahead of expiry
        assert await cache.refresh_due() and cp.issuer.calls == 2
        second = cache.get("wl-a")
        assert second is not None and second != first
        await cp.stop()  # the CP goes away
        clock.advance(200)
        assert not await cache.refresh_due()  # due, fetch fails
        assert cache.get("wl-a") == second  # still valid: used until expiry
        clock.advance(96)  # within the 5 s expiry margin
        assert cache.get("wl-a") is None
    finally:
        await channel.close()
        await cp.stop()
