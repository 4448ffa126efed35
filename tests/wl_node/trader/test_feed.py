"""TraderService offer feed, exporter side: every visibility rule, paging, tombstones, export delay, watch."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, offer, reason_of, trader
from wl_node.catalog.validation import validate_offer
from xcwl.bench.catalog_nodes import BLOCKED, PAUSED, CatalogNode, World, start_node
from xporty.trader.v1 import trader_service_pb2 as tr
from xwl_runtime.clock import ManualClock
from xwl_runtime.identity import Identity

B = Identity.wl("wl-b")


@pytest.fixture
async def world(pki: PkiFixture, dbs: DbFactory) -> AsyncIterator[World]:
    """Exporter node wl-a (manual clock); wl-b and wl-c are registered WLs without nodes; pair {a, b} only."""
    w = World()
    node = await start_node("wl-a", dbs("a"), pki.dir, clock=ManualClock(), run_loops=False)
    w.add_wl(node, "XPY-A", 2)
    w.currencies["wl-b"] = ("XPY-B", 2)
    w.currencies["wl-c"] = ("XPY-C", 2)
    w.pair("wl-a", "wl-b", fx_rate="2")
    await w.publish()
    try:
        yield w
    finally:
        await w.close()


def exporter(world: World) -> CatalogNode:
    return world.nodes["wl-a"]


async def publish(node: CatalogNode, offer_id: str, price: str = "10.00") -> None:
    await node.catalog.book.publish(validate_offer(offer(offer_id, price), currency="XPY-A", decimals=2))


async def page(pki: PkiFixture, node: CatalogNode, cursor: str = "", size: int = 0,
               who: Identity = B) -> tr.ListOffersResponse:
    async with trader(pki, node.server.port, who) as stub:
        return await stub.ListOffers(tr.ListOffersRequest(cursor=cursor, page_size=size), timeout=5)


async def test_pages_resume_from_the_cursor_and_deliver_tombstones(pki: PkiFixture, world: World) -> None:
    node = exporter(world)
    for i in range(7):
        await publish(node, f"o-{i}")
    seen: list[str] = []
    cursor, more, pages = "", True, 0
    while more:
        resp = await page(pki, node, cursor, 3)
        seen += [c.offer_id for c in resp.changes]
        cursor, more, pages = resp.next_cursor, resp.has_more, pages + 1
    assert (seen, pages) == ([f"o-{i}" for i in range(7)], 3)
    first = await page(pki, node, "", 3)
    manager = first.changes[0].offer.manager  # peers get the masked contact and an opaque handle, never the clear one
    assert (manager.name, manager.email, manager.phone) == ("J*** S***", "j***@e***.com", "+55 11 9****-4321")
    assert manager.handle.startswith("ch_") and "joana" not in first.SerializeToString().decode("latin-1").lower()
    assert first.changes[0].offer.unit_price.amount == "10.00"

    await node.catalog.book.update(validate_offer(offer("o-2", "11.00"), currency="XPY-A", decimals=2))
    await node.catalog.book.withdraw("o-3")
    resp = await page(pki, node, cursor)
    assert [(c.offer_id, c.tombstone, c.offer.revision) for c in resp.changes] == [("o-2", False, 2),
                                                                                  ("o-3", True, 0)]
    assert not resp.changes[1].HasField("offer") and not resp.has_more
    assert (await page(pki, node, resp.next_cursor)).changes == []


async def _refused(pki: PkiFixture, node: CatalogNode, who: Identity = B) -> tuple[grpc.StatusCode, str, str]:
    async with trader(pki, node.server.port, who) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as listed:
            await stub.ListOffers(tr.ListOffersRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as watched:
            async for _ in stub.WatchOffers(tr.WatchOffersRequest(), timeout=5):
                pass
    assert watched.value.code() == listed.value.code()
    return listed.value.code(), reason_of(listed.value)[0], reason_of(watched.value)[0]


async def test_each_policy_rule_refuses_the_peer_on_the_exporter_side(pki: PkiFixture, world: World) -> None:
    node = exporter(world)
    await publish(node, "o-1")
    assert len((await page(pki, node)).changes) == 1
    pair = world.pair("wl-a", "wl-b")
    direction = pair.direction("wl-a", "wl-b")
    denied = grpc.StatusCode.PERMISSION_DENIED
    cases = [
        ("status", PAUSED, "PAIR_NOT_ACTIVE"),
        ("status", BLOCKED, "PAIR_NOT_ACTIVE"),
        ("imports_frozen", True, "IMPORTS_FROZEN"),
        ("import_enabled", False, "IMPORT_DISABLED"),
        ("destination_visible", False, "NOT_VISIBLE"),
    ]
    for attr, value, reason in cases:
        target = direction if hasattr(direction, attr) else pair
        before = getattr(target, attr)
        setattr(target, attr, value)
        await world.publish()
        assert await _refused(pki, node) == (denied, reason, reason), attr
        setattr(target, attr, before)
        await world.publish()
        assert len((await page(pki, node)).changes) == 1  # and allowed again once restored
    # The other direction's settings do not open this one.
    pair.direction("wl-b", "wl-a").destination_visible = True
    assert await _refused(pki, node, Identity.wl("wl-c")) == (denied, "NO_PAIR", "NO_PAIR")
    assert await _refused(pki, node, Identity.wl("wl-a")) == (denied, "SELF_NOT_ALLOWED", "SELF_NOT_ALLOWED")
    assert (await _refused(pki, node, Identity.app("wl-b", "shop")))[:2] == (denied, "IDENTITY_NOT_ALLOWED")
    assert (await _refused(pki, node, Identity.ops("alice")))[:2] == (denied, "IDENTITY_NOT_ALLOWED")


async def test_export_delay_holds_young_offers_without_blocking_later_changes(
    pki: PkiFixture, world: World
) -> None:
    node = exporter(world)
    clock = node.catalog.book._clock  # noqa: SLF001 - the node's ManualClock
    assert isinstance(clock, ManualClock)
    world.pair("wl-a", "wl-b").direction("wl-a", "wl-b").export_delay = dt.timedelta(seconds=60)
    await world.publish()
    await publish(node, "old")
    clock.advance(120)
    await publish(node, "young")  # published after "old", so later in the feed
    first = await page(pki, node)
    assert [c.offer_id for c in first.changes] == ["old"]

    await node.catalog.book.update(validate_offer(offer("old", "12.00"), currency="XPY-A", decimals=2))
    second = await page(pki, node, first.next_cursor)
    assert [(c.offer_id, c.offer.revision) for c in second.changes] == [("old", 2)]  # not held behind "young"

    clock.advance(59)
    assert (await page(pki, node, second.next_cursor)).changes == []
    clock.advance(2)
    third = await page(pki, node, second.next_cursor)
    assert [c.offer_id for c in third.changes] == ["young"]  # matured: served although its sequence was passed
    assert (await page(pki, node, third.next_cursor)).changes == []


async def test_a_delay_change_expires_cursors(pki: PkiFixture, world: World) -> None:
    node = exporter(world)
    await publish(node, "o-1")
    cursor = (await page(pki, node)).next_cursor
    world.pair("wl-a", "wl-b").direction("wl-a", "wl-b").export_delay = dt.timedelta(seconds=5)
    await world.publish()
    async with trader(pki, node.server.port, B) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListOffers(tr.ListOffersRequest(cursor=cursor), timeout=5)
        assert (err.value.code(), reason_of(err.value)[0]) == (grpc.StatusCode.FAILED_PRECONDITION, "CURSOR_EXPIRED")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.ListOffers(tr.ListOffersRequest(cursor="not-a-cursor"), timeout=5)
        assert (bad.value.code(), reason_of(bad.value)[1].get("field")) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                            "cursor")


async def test_watch_notifies_on_commit_and_ends_when_the_pair_pauses(pki: PkiFixture, world: World) -> None:
    node = exporter(world)
    await publish(node, "o-1")
    cursor = (await page(pki, node)).next_cursor
    async with trader(pki, node.server.port, B) as stub:
        call = stub.WatchOffers(tr.WatchOffersRequest(cursor=cursor), timeout=10)
        reader = aiter(call)
        pending = asyncio.ensure_future(anext(reader))
        await asyncio.sleep(0.1)
        assert not pending.done()  # nothing new after our cursor
        await publish(node, "o-2")
        got = await asyncio.wait_for(pending, 2)
        assert got.latest_sequence == 2
        world.pair("wl-a", "wl-b", status=PAUSED)
        await world.publish()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(anext(reader), 2)
        assert reason_of(err.value)[0] == "PAIR_NOT_ACTIVE"


async def test_order_rpcs_of_the_one_trader_servicer_need_a_token(pki: PkiFixture, world: World) -> None:
    async with trader(pki, exporter(world).server.port, B) as stub:
        for call, req in ((stub.PlaceOrder, tr.PlaceOrderRequest(idempotency_key="k", offer_id="o", quantity=1)),
                          (stub.CancelOrder, tr.CancelOrderRequest(idempotency_key="k", order_id="x")),
                          (stub.GetOrder, tr.GetOrderRequest(order_id="x"))):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(req, timeout=5)
            assert (err.value.code(), reason_of(err.value)[0]) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


async def test_a_stopping_node_ends_its_open_watches_at_once(pki: PkiFixture, world: World) -> None:
    """The node's drain ends open WatchOffers streams with OK at once: its stop does not wait out the grace period."""
    node = exporter(world)
    cursor = (await page(pki, node)).next_cursor
    async with trader(pki, node.server.port, B) as stub:
        call = stub.WatchOffers(tr.WatchOffersRequest(cursor=cursor), timeout=30)
        reader = aiter(call)
        pending = asyncio.ensure_future(anext(reader))
        await asyncio.sleep(0.1)
        assert not pending.done()  # open, nothing to say
        loop = asyncio.get_running_loop()
        started = loop.time()
        await node.close_with_grace(10.0)
        assert loop.time() - started < 5.0  # not the 10 s grace
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 2)
        assert await call.code() is grpc.StatusCode.OK

