"""Token cache: fetched ahead of expiry from the CP, never on the caller's path, used until expiry when the CP is
down."""

from __future__ import annotations

import datetime as dt

from tests.cp_server.identity.harness import running_identity_cp
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


PEERS = [f"wl-p{i:02d}" for i in range(12)]


async def test_a_node_with_many_peers_renews_every_token_with_one_rpc_per_refresh_period(
        pki: PkiFixture, db_url: str) -> None:
    """Against the real IdentityService: one IssueTokens call brings a token for each of 12 callable peers, the next
    renewal (past half the lifetime) is again one call for all, and a peer the policy blocks gets no token and does
    not make the node ask again while checkouts keep wanting it."""
    clock = ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    async with running_identity_cp(pki, db_url, clock=clock) as cp:
        await cp.register_wl("wl-b", "wl-x", *PEERS)
        for peer in PEERS:
            await cp.open_pair("wl-b", peer)
        await cp.open_pair("wl-b", "wl-x", blocked_importer="wl-b")  # wl-x -> wl-b imports disabled
        channel = CpChannel(cp_channel_factory(cp.mtls_target, reconnect_cap_s=0.3),
                            pki.material(Identity.wl("wl-b")), identity=Identity.wl("wl-b"))
        cache = TokenCache(channel, clock, audiences=lambda: PEERS)
        try:
            assert await cache.refresh_due()
            assert cache.rpcs == 1
            first = {p: cache.get(p) for p in PEERS}
            assert all(first.values()) and len(set(first.values())) == len(PEERS)
            for _ in range(5):  # idle passes within the first half of the lifetime: nothing due, no RPC
                clock.advance(25)
                assert await cache.refresh_due()
            assert cache.rpcs == 1
            clock.advance(26)  # 151 s: past half of the 5-minute lifetime, every token due at once
            assert await cache.refresh_due()
            assert cache.rpcs == 2
            second = {p: cache.get(p) for p in PEERS}
            assert all(second.values()) and not set(second.values()) & set(first.values())

            # A checkout towards the blocked exporter: no token, one batch asks for it, then no more RPCs.
            assert cache.get("wl-x") is None
            assert await cache.refresh_due()
            assert cache.rpcs == 3 and cache.get("wl-x") is None
            for _ in range(5):
                assert cache.get("wl-x") is None
                assert await cache.refresh_due()
            assert cache.rpcs == 3
        finally:
            await channel.close()
