"""Personal data across WLs with three real nodes (wl-a exports; wl-b and wl-c import): the feed and the importers'
stores never hold a clear contact; a granted contact request is answered and logged at the exporter, an ungranted
one is refused with PERMISSION_DENIED (and logged); erasing a subject at the exporter removes it from every
importer after the next sync; export returns what the exporter holds."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import sqlalchemy as sa

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import (
    EMAIL,
    NAME,
    PHONE,
    DbFactory,
    eventually,
    list_all,
    offer,
    reason_of,
    storefront,
    trader,
)
from wl_node.catalog.sync import SyncSettings
from wl_node.catalog.tables import imported_offers
from wl_node.catalog.validation import validate_offer
from wl_node.privacy.accounts import ERASED_MARK, TraderAccounts
from wl_node.privacy.disclosure import access_log
from wl_node.privacy.tables import contact_disclosures, subject_requests
from wl_node.privacy_ops.subjects import erase_subject, export_subject
from xcwl.bench.catalog_nodes import CatalogNode, World, start_node
from xporty.node.v1 import storefront_service_pb2 as sf
from xporty.trader.v1 import trader_service_pb2 as tr
from xwl_runtime import correlation
from xwl_runtime.clock import SystemClock
from xwl_runtime.identity import Identity

FAST = SyncSettings(poll_interval_s=0.2, backoff_base_s=0.02, backoff_cap_s=0.2, rpc_timeout_s=5)
CRM_B, SHOP_B, CRM_C = Identity.app("wl-b", "crm"), Identity.app("wl-b", "shop"), Identity.app("wl-c", "crm")
_NOW = SystemClock().now
CLEAR = (EMAIL, PHONE, NAME, "91234-4321", "joana")


@pytest.fixture
async def world(pki: PkiFixture, dbs: DbFactory) -> AsyncIterator[World]:
    w = World()
    try:
        w.add_wl(await start_node("wl-a", dbs("a"), pki.dir, sync_settings=FAST, contact_grants=("wl-b",)), "XPY-A")
        for wl, currency in (("wl-b", "XPY-B"), ("wl-c", "XPY-C")):
            w.add_wl(await start_node(wl, dbs(wl), pki.dir, sync_settings=FAST, pii_apps=("crm",)), currency)
        w.pair("wl-a", "wl-b", fx_rate="2", fx_version=1)
        w.pair("wl-a", "wl-c", fx_rate="3", fx_version=1)
        await w.publish()
        yield w
    finally:
        await w.close()


async def _imported_rows(node: CatalogNode) -> list[tuple[str, ...]]:
    async with node.engine.connect() as conn:
        rows = (await conn.execute(sa.select(imported_offers))).all()
    return [tuple(str(v) for v in row) for row in rows]


async def _publish(world: World, *offer_ids: str) -> None:
    a = world.nodes["wl-a"]
    for offer_id in offer_ids:
        await a.catalog.book.publish(validate_offer(offer(offer_id), currency="XPY-A", decimals=2))

    async def synced() -> bool:
        counts = [len(await _imported_rows(world.nodes[wl])) for wl in ("wl-b", "wl-c")]
        return counts == [len(offer_ids)] * 2

    await eventually(synced, timeout=10)


async def test_the_feed_and_importers_never_hold_a_clear_contact(pki: PkiFixture, world: World) -> None:
    await _publish(world, "o-1", "o-2")
    a = world.nodes["wl-a"]
    for who in (Identity.wl("wl-b"), Identity.wl("wl-c")):
        async with trader(pki, a.server.port, who) as stub:
            wire = (await stub.ListOffers(tr.ListOffersRequest(), timeout=5)).SerializeToString()
        assert all(text.encode() not in wire for text in CLEAR), "a clear contact on the wire"
        assert b"j***@e***.com" in wire and b"ch_" in wire
    for wl in ("wl-b", "wl-c"):
        rows = await _imported_rows(world.nodes[wl])
        assert rows and not any(text in value for row in rows for value in row for text in CLEAR)
    # The exporter's own offer rows hold the masked contact; the clear one only encrypted in the trader account.
    async with a.engine.connect() as conn:
        dump = repr((await conn.execute(sa.text("SELECT * FROM offers"))).all())
        dump += repr((await conn.execute(sa.text("SELECT * FROM trader_accounts"))).all())
    assert not any(text in dump for text in CLEAR) and "enc1:" in dump


async def test_granted_contact_request_is_answered_and_logged_at_the_exporter(pki: PkiFixture, world: World) -> None:
    await _publish(world, "o-1")
    a, b = world.nodes["wl-a"], world.nodes["wl-b"]
    cid = correlation.new_correlation_id()
    async with storefront(pki, b.server.port, CRM_B) as stub:
        got = await stub.GetTraderContact(sf.GetTraderContactRequest(imported_offer_id="wl-a:o-1",
                                                                     purpose="confirm a delivery date"),
                                          timeout=5, metadata=((correlation.METADATA_KEY, cid),))
    assert (got.contact.name, got.contact.email, got.contact.phone) == (NAME, EMAIL, PHONE)
    log = await access_log(a.engine, _accounts(a).keyring)
    assert [(r.caller, r.purpose, r.granted, r.correlation_id) for r in log] == [
        ("wl-b", "confirm a delivery date", True, cid)]
    assert log[0].handle == got.contact.handle and log[0].account_id.startswith("ta_")
    # The importer kept nothing: its rows are still masked.
    assert not any(EMAIL in v for row in await _imported_rows(b) for v in row)


async def test_ungranted_contact_requests_are_refused(pki: PkiFixture, world: World) -> None:
    await _publish(world, "o-1")
    a, b, c = world.nodes["wl-a"], world.nodes["wl-b"], world.nodes["wl-c"]
    # wl-c's app holds the PII scope at wl-c, but the exporter does not grant wl-c.
    async with storefront(pki, c.server.port, CRM_C) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetTraderContact(sf.GetTraderContactRequest(imported_offer_id="wl-a:o-1", purpose="sales"),
                                        timeout=5)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value)[0] == "CONTACT_NOT_GRANTED"
    assert EMAIL not in (refused.value.details() or "")
    # An app of wl-b without the PII scope is refused by its own node, before any call to the exporter.
    async with storefront(pki, b.server.port, SHOP_B) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as no_scope:
            await stub.GetTraderContact(sf.GetTraderContactRequest(imported_offer_id="wl-a:o-1", purpose="sales"),
                                        timeout=5)
    assert no_scope.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(no_scope.value)[0] == "PII_SCOPE_REQUIRED"
    # wl-c asking the exporter directly with a handle it saw in the feed: refused the same way.
    handle = (await _imported_rows(c))[0][-1]
    async with trader(pki, a.server.port, Identity.wl("wl-c")) as peer:
        with pytest.raises(grpc.aio.AioRpcError) as direct:
            await peer.GetTraderContact(tr.GetTraderContactRequest(handle=handle, purpose="x"), timeout=5)
    assert (direct.value.code(), reason_of(direct.value)[0]) == (grpc.StatusCode.PERMISSION_DENIED,
                                                                  "CONTACT_NOT_GRANTED")
    async with a.engine.connect() as conn:
        logged = (await conn.execute(sa.select(contact_disclosures.c.caller, contact_disclosures.c.granted)
                                     .order_by(contact_disclosures.c.id))).all()
    assert [tuple(r) for r in logged] == [("wl-c", False), ("wl-c", False)]  # refusals logged; no-scope never left b


async def test_erase_reaches_every_importer_and_export_returns_what_is_held(pki: PkiFixture, world: World) -> None:
    await _publish(world, "o-1", "o-2")
    a = world.nodes["wl-a"]
    accounts = _accounts(a)
    exported = await export_subject(a.engine, accounts, EMAIL, requested_by="ops:alice", now=_NOW())
    assert exported["trader_accounts"][0]["contact"] == {"name": NAME, "email": EMAIL, "phone": PHONE}
    assert [o["offer_id"] for o in exported["offers"]] == ["o-1", "o-2"]
    handles = {row[-1] for wl in ("wl-b", "wl-c") for row in await _imported_rows(world.nodes[wl])}

    result = await erase_subject(a.engine, accounts, EMAIL, requested_by="ops:alice", now=_NOW())
    a.catalog.notifier.bump(result.last_sequence)
    assert result.offers == 2

    async def erased_everywhere() -> bool:
        rows = [r for wl in ("wl-b", "wl-c") for r in await _imported_rows(world.nodes[wl])]
        return len(rows) == 4 and all(ERASED_MARK in r and r[-1] == "" for r in rows)

    await eventually(erased_everywhere, timeout=10)
    for wl in ("wl-b", "wl-c"):
        async with storefront(pki, world.nodes[wl].server.port, Identity.app(wl, "crm")) as stub:
            shown = await list_all(stub)
        assert {o.manager.email for o in shown} == {ERASED_MARK}  # type: ignore[attr-defined]
    async with a.engine.connect() as conn:
        dump = repr((await conn.execute(sa.text("SELECT * FROM trader_accounts"))).all())
        audited = (await conn.execute(sa.select(subject_requests.c.kind, subject_requests.c.affected)
                                      .order_by(subject_requests.c.id))).all()
    assert [tuple(r) for r in audited] == [("EXPORT", 3), ("ERASE", 3)]
    assert "ERASED" in dump and not any(text in dump for text in CLEAR)
    assert (await accounts_lookup(a, accounts)) is None
    # The old handle no longer opens anything, even for the granted peer.
    async with trader(pki, a.server.port, Identity.wl("wl-b")) as peer:
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await peer.GetTraderContact(tr.GetTraderContactRequest(handle=sorted(handles)[0], purpose="x"), timeout=5)
    assert gone.value.code() is grpc.StatusCode.NOT_FOUND
    again = await export_subject(a.engine, accounts, EMAIL, requested_by="ops:alice", now=_NOW())
    assert again["trader_accounts"] == []


def _accounts(node: CatalogNode) -> TraderAccounts:
    assert node.catalog.accounts is not None
    return node.catalog.accounts


async def accounts_lookup(node: CatalogNode, accounts: TraderAccounts) -> object:
    async with node.engine.connect() as conn:
        return await accounts.by_email(conn, EMAIL)
