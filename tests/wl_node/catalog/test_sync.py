"""The importer's sync job end to end: two nodes over mTLS, real stores, views fed to their PolicyStates."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import EMAIL, NAME, PHONE, DbFactory, eventually, list_all, offer, storefront
from wl_node.catalog.sync import SyncSettings
from wl_node.catalog.tables import imported_offers, sync_cursors
from wl_node.catalog.validation import validate_offer
from xcwl.bench.catalog_nodes import ACTIVE, BLOCKED, PAUSED, CatalogNode, World, start_node
from xporty.node.v1 import storefront_service_pb2 as sf
from xwl_runtime.identity import Identity

FAST = SyncSettings(poll_interval_s=0.2, backoff_base_s=0.02, backoff_cap_s=0.2, rpc_timeout_s=5)
SHOP_B, CRM_B, OPS = Identity.app("wl-b", "shop"), Identity.app("wl-b", "crm"), Identity.ops("alice")


async def _world(pki: PkiFixture, dbs: DbFactory, **b_kw: object) -> World:
    w = World()
    a = await start_node("wl-a", dbs("a"), pki.dir, sync_settings=FAST)
    w.add_wl(a, "XPY-A", 2)
    try:
        b = await start_node("wl-b", dbs("b"), pki.dir, **{"sync_settings": FAST, "pii_apps": ("crm",), **b_kw})
    except BaseException:
        await w.close()
        raise
    w.add_wl(b, "XPY-B", 2)
    w.pair("wl-a", "wl-b", fx_rate="2.5", fx_version=1)  # 2.5 XPY-B per XPY-A
    await w.publish()
    return w


@pytest.fixture
async def world(pki: PkiFixture, dbs: DbFactory) -> AsyncIterator[World]:
    w = await _world(pki, dbs)
    try:
        yield w
    finally:
        await w.close()


async def put(node: CatalogNode, offer_id: str, price: str, currency: str, **fields: object) -> None:
    valid = validate_offer(offer(offer_id, price, currency=currency, **fields), currency=currency, decimals=2)
    try:
        await node.catalog.book.publish(valid)
    except Exception:  # noqa: BLE001 - exists: update instead
        await node.catalog.book.update(valid)


async def rows(node: CatalogNode, source: str | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(imported_offers)
    if source:
        query = query.where(imported_offers.c.source_wl == source)
    async with node.engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def listed(pki: PkiFixture, node: CatalogNode, who: Identity = SHOP_B) -> dict[str, object]:
    async with storefront(pki, node.server.port, who, node=node.wl_id) as stub:
        return {o.imported_offer_id: o for o in await list_all(stub)}


async def test_full_sync_converts_prices_both_ways_and_masks_contacts(
    pki: PkiFixture, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    for ours in ("wl_node", "xwl_runtime"):
        caplog.set_level(logging.DEBUG, logger=ours)
    a, b = world.nodes["wl-a"], world.nodes["wl-b"]
    await put(a, "o-1", "10.01", "XPY-A")  # × 2.5 = 25.025 → 25.02 (half to even)
    await put(a, "o-2", "10.03", "XPY-A")  # × 2.5 = 25.075 → 25.08
    await put(b, "p-1", "3.33", "XPY-B")  # / 2.5 = 1.332 → 1.33 (the derived inverse)
    await put(b, "p-2", "0.01", "XPY-B")  # / 2.5 = 0.004 → 0.00: shown as unavailable

    async def synced() -> bool:
        return len(await listed(pki, b)) == 2 and len(await listed(pki, a, Identity.app("wl-a", "shop"))) == 2

    await eventually(synced)
    at_b = await listed(pki, b)
    o1, o2 = at_b["wl-a:o-1"], at_b["wl-a:o-2"]
    assert (o1.price.currency, o1.price.amount, o1.source_price.amount, o1.fx_rate, o1.fx_version) == (
        "XPY-B", "25.02", "10.01", "2.5", 1)
    assert o2.price.amount == "25.08" and o1.available
    at_a = await listed(pki, a, Identity.app("wl-a", "shop"))
    p1, p2 = at_a["wl-b:p-1"], at_a["wl-b:p-2"]
    assert (p1.price.currency, p1.price.amount, p1.fx_rate, p1.source_wl) == ("XPY-A", "1.33", "0.4", "wl-b")
    assert (p2.price.amount, p2.available) == ("0.00", False)

    # Masked for everyone at the importer, the PII-scoped app included: the clear contact never reaches this node's
    # store; that app asks the exporter for it (tests/wl_node/privacy/test_contact_disclosure.py).
    for who in (SHOP_B, OPS):
        manager = (await listed(pki, b, who))["wl-a:o-1"].manager
        assert (manager.name, manager.email, manager.phone) == ("J*** S***", "j***@e***.com", "+55 11 9****-4321")
    async with storefront(pki, b.server.port, SHOP_B) as stub:
        got = (await stub.GetImportedOffer(sf.GetImportedOfferRequest(imported_offer_id="wl-a:o-1"), timeout=5))
    assert got.offer.manager.email == "j***@e***.com"
    async with storefront(pki, b.server.port, CRM_B) as stub:
        got = (await stub.GetImportedOffer(sf.GetImportedOfferRequest(imported_offer_id="wl-a:o-1"), timeout=5))
    assert (got.offer.manager.name, got.offer.manager.email, got.offer.manager.phone) == (
        "J*** S***", "j***@e***.com", "+55 11 9****-4321")
    assert got.offer.manager.handle.startswith("ch_")

    # Never in logs, whatever logged it (publish, feed, sync, reads).
    mine = [r for r in caplog.records if r.name.startswith(("wl_node", "xwl_runtime"))]
    assert any(r.name.startswith("wl_node.catalog") for r in mine), "the catalog logs its work"
    for record in mine:
        text = record.getMessage() + repr(getattr(record, "fields", ""))
        assert EMAIL not in text and PHONE not in text and NAME not in text


async def test_filters_and_stable_paging(pki: PkiFixture, world: World) -> None:
    a, b = world.nodes["wl-a"], world.nodes["wl-b"]
    for i in range(12):
        await put(a, f"o-{i:02d}", "1.00", "XPY-A", category="tools" if i % 2 else "food",
                  title=f"Hammer {i}" if i % 3 == 0 else f"Thing {i}")
    await eventually(lambda: _count(pki, b, 12))
    async with storefront(pki, b.server.port, SHOP_B) as stub:
        pages: list[list[str]] = []
        token = ""
        while True:
            resp = await stub.ListImportedOffers(sf.ListImportedOffersRequest(page_size=5, page_token=token), timeout=5)
            pages.append([o.imported_offer_id for o in resp.offers])
            token = resp.next_page_token
            if not token:
                break
        flat = [i for p in pages for i in p]
        assert [len(p) for p in pages] == [5, 5, 2] and flat == sorted(flat)
        tools = await list_all(stub, category="tools")
        assert len(tools) == 6
        hammers = await list_all(stub, text="HAMMER", category="food")
        assert sorted(o.source_offer_id for o in hammers) == ["o-00", "o-06"]
        assert await list_all(stub, source_wl="wl-z") == []
        assert await list_all(stub, text="100%_") == []  # LIKE wildcards are literal


async def _count(pki: PkiFixture, node: CatalogNode, n: int, who: Identity = SHOP_B) -> bool:
    return len(await listed(pki, node, who)) == n


async def test_changes_reach_the_importer_within_a_second(pki: PkiFixture, world: World) -> None:
    a, b = world.nodes["wl-a"], world.nodes["wl-b"]
    await put(a, "o-1", "10.00", "XPY-A")
    await eventually(lambda: _count(pki, b, 1))

    async def title_is(text: str) -> bool:
        got = (await listed(pki, b)).get("wl-a:o-1")
        return got is not None and got.title == text

    await put(a, "o-1", "10.00", "XPY-A", title="Renamed")
    took = await eventually(lambda: title_is("Renamed"), timeout=1.0)
    assert took < 1.0
    await a.catalog.book.withdraw("o-1")
    await eventually(lambda: _count(pki, b, 0), timeout=1.0)
    assert await rows(b) == 0


async def test_fx_change_reprices_the_whole_snapshot(pki: PkiFixture, world: World) -> None:
    a, b = world.nodes["wl-a"], world.nodes["wl-b"]
    for i in range(5):
        await put(a, f"o-{i}", f"{i + 1}.01", "XPY-A")
    await eventually(lambda: _count(pki, b, 5))
    world.pair("wl-a", "wl-b", fx_rate="3.3333", fx_version=2)
    await world.publish()
    # The API shows the new FX at once …
    shown = await listed(pki, b)
    assert {o.price.amount for o in shown.values()} == {"3.37", "6.70", "10.03", "13.37", "16.70"}
    assert {o.fx_version for o in shown.values()} == {2}

    # … and the sync job persists the re-priced snapshot.
    async def persisted() -> bool:
        async with b.engine.connect() as conn:
            got = (await conn.execute(sa.select(imported_offers.c.fx_version, imported_offers.c.price))).all()
            cursor = await conn.scalar(sa.select(sync_cursors.c.fx_version))
        return {v for v, _ in got} == {2} and cursor == 2 and "3.37" in {p for _, p in got}

    await eventually(persisted)


async def test_pause_block_freeze_and_lost_visibility_hide_at_once(pki: PkiFixture, world: World) -> None:
    a, b = world.nodes["wl-a"], world.nodes["wl-b"]
    await put(a, "o-1", "10.00", "XPY-A")
    await eventually(lambda: _count(pki, b, 1))
    pair = world.pair("wl-a", "wl-b")
    direction = pair.direction("wl-a", "wl-b")
    for target, attr, value, restore in (
        (pair, "status", PAUSED, ACTIVE), (pair, "status", BLOCKED, ACTIVE), (pair, "imports_frozen", True, False),
        (direction, "destination_visible", False, True), (direction, "import_enabled", False, True),
    ):
        setattr(target, attr, value)
        await world.publish()
        # No waiting: hidden in the API and deleted from the snapshot when the view is applied.
        assert await listed(pki, b) == {}, attr
        assert await rows(b) == 0, attr
        setattr(target, attr, restore)
        await world.publish()
        await eventually(lambda: _count(pki, b, 1), timeout=15)  # the policy change wakes the worker; slack for load


async def test_exporter_refusal_hides_even_before_the_importers_view_says_so(pki: PkiFixture, world: World) -> None:
    a, b = world.nodes["wl-a"], world.nodes["wl-b"]
    await put(a, "o-1", "10.00", "XPY-A")
    await eventually(lambda: _count(pki, b, 1))
    world.pair("wl-a", "wl-b").direction("wl-a", "wl-b").destination_visible = False
    await world.publish(only=["wl-a"])  # the importer's view lags behind
    await eventually(lambda: _rows_are(b, 0), timeout=2)  # the exporter's refusal alone hides them
    assert await listed(pki, b) == {}
    world.pair("wl-a", "wl-b").direction("wl-a", "wl-b").destination_visible = True
    await world.publish()
    await eventually(lambda: _count(pki, b, 1))


async def _rows_are(node: CatalogNode, n: int) -> bool:
    return await rows(node) == n


async def test_resume_after_a_crash_in_the_middle_of_a_page(pki: PkiFixture, dbs: DbFactory) -> None:
    calls: list[int] = []
    crashed = asyncio.Event()

    async def crash_on_second_page(exporter: str, written: int) -> None:
        calls.append(written)
        if len(calls) == 2:
            crashed.set()
            raise RuntimeError("injected crash after the page's rows were written, before commit")

    # wl-b's loops start only once the offers exist: its first sync is the full sync of those 10 offers (an
    # earlier, empty sync would finish the full sync and shift the injected crash to another page).
    w = await _world(pki, dbs, sync_settings=SyncSettings(page_size=3, poll_interval_s=0.2, backoff_base_s=0.02,
                                                          backoff_cap_s=0.2), before_commit=crash_on_second_page,
                     run_loops=False)
    try:
        a, b = w.nodes["wl-a"], w.nodes["wl-b"]
        for i in range(10):
            await put(a, f"o-{i}", "1.00", "XPY-A")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(logging.getLogger("wl_node.catalog.sync"), "disabled", True)  # the crash is logged as error
            b.start_loops()
            await asyncio.wait_for(crashed.wait(), 5)
            await b.stop_loops()  # the node dies mid-sync
        async with b.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(imported_offers)) == 3
            cursor = (await conn.execute(sa.select(sync_cursors))).one()
        assert cursor.cursor and cursor.full_sync  # page 1 committed with its cursor; page 2 rolled back

        b.catalog.snapshot.before_commit = None
        written_after: list[int] = []

        async def count(exporter: str, written: int) -> None:
            written_after.append(written)

        b.catalog.snapshot.before_commit = count
        b.start_loops()  # restart: resumes from the stored cursor
        await eventually(lambda: _count(pki, b, 10))
        assert written_after[:3] == [3, 3, 1]  # pages 2..4 only: nothing before the cursor was fetched again
        async with b.engine.connect() as conn:
            assert not (await conn.execute(sa.select(sync_cursors.c.full_sync))).scalar_one()
    finally:
        await w.close()
