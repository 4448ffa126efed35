"""StorefrontService offer RPCs: validation (field named, nothing stored), lifecycle, callers, checkout stub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import sqlalchemy as sa

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, offer, reason_of, storefront
from wl_node.catalog.tables import offer_feed, offers
from xcwl.bench.catalog_nodes import CatalogNode, World, start_node
from xporty.node.v1 import storefront_service_pb2 as sf
from xwl_runtime.identity import Identity

SHOP = Identity.app("wl-a", "shop")


@pytest.fixture
async def node(pki: PkiFixture, dbs: DbFactory) -> AsyncIterator[CatalogNode]:
    world = World()
    n = await start_node("wl-a", dbs("a"), pki.dir, run_loops=False)
    world.add_wl(n, "XPY-A", 2)
    await world.publish()
    try:
        yield n
    finally:
        await n.close()


async def _stored(node: CatalogNode) -> tuple[int, int]:
    async with node.engine.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(offers))
        seq = await conn.scalar(sa.select(offer_feed.c.last_sequence))
    return int(count or 0), int(seq or 0)


BAD = [
    ("offer.unit_price.amount", {"unit_price": {"currency": "XPY-A", "amount": "0"}}),
    ("offer.unit_price.amount", {"unit_price": {"currency": "XPY-A", "amount": "-1.00"}}),
    ("offer.unit_price.amount", {"unit_price": {"currency": "XPY-A", "amount": "1.001"}}),
    ("offer.unit_price.amount", {"unit_price": {"currency": "XPY-A", "amount": "1e3"}}),
    ("offer.unit_price.currency", {"unit_price": {"currency": "XPY-Z", "amount": "1.00"}}),
    ("offer.stock", {"stock": -1}),
    ("offer.title", {"title": ""}),
    ("offer.title", {"title": "x" * 201}),
    ("offer.category", {"category": ""}),
    ("offer.category", {"category": "c" * 101}),
    ("offer.description", {"description": "d" * 5001}),
    ("offer.image_urls", {"image_urls": ["https://i.example.com/x.png"] * 21}),
    ("offer.image_urls[1]", {"image_urls": ["https://i.example.com/x.png", "http://i.example.com/y.png"]}),
    ("offer.manager.email", {"manager": {"name": "Jo", "email": "not-an-email", "phone": "+55 11 91234-4321"}}),
    ("offer.manager.phone", {"manager": {"name": "Jo", "email": "jo@example.com", "phone": "12"}}),
    ("offer.manager.name", {"manager": {"name": "", "email": "jo@example.com", "phone": "+55 11 91234-4321"}}),
    ("offer.offer_id", {"offer_id": "has:colon"}),
    ("offer.offer_id", {"offer_id": ""}),
]


def _apply(bad: object, change: dict[str, object]) -> None:
    for key, value in change.items():
        target = getattr(bad, key)
        if isinstance(value, dict):
            target.Clear()
            for k, v in value.items():
                setattr(target, k, v)
        elif isinstance(value, list):
            del target[:]
            target.extend(value)
        else:
            setattr(bad, key, value)


async def test_bad_offers_are_refused_naming_the_field_and_nothing_is_stored(
    pki: PkiFixture, node: CatalogNode
) -> None:
    async with storefront(pki, node.server.port, SHOP, node=node.wl_id) as stub:
        for field, change in BAD:
            bad = offer("o-1")
            _apply(bad, change)
            for call, req in ((stub.PublishOffer, sf.PublishOfferRequest(offer=bad)),
                              (stub.UpdateOffer, sf.UpdateOfferRequest(offer=bad))):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(req, timeout=5)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
                reason, meta = reason_of(err.value)
                assert (reason, meta["field"]) == ("INVALID_ARGUMENT", field)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.WithdrawOffer(sf.WithdrawOfferRequest(offer_id="bad id"), timeout=5)
        assert reason_of(err.value)[1]["field"] == "offer_id"
    assert await _stored(node) == (0, 0)
    # And the unmodified offer is accepted, so the refusals above were about the named fields.
    async with storefront(pki, node.server.port, SHOP, node=node.wl_id) as stub:
        await stub.PublishOffer(sf.PublishOfferRequest(offer=offer("o-1")), timeout=5)
    assert await _stored(node) == (1, 1)


async def test_publish_update_withdraw_lifecycle(pki: PkiFixture, node: CatalogNode) -> None:
    async with storefront(pki, node.server.port, SHOP, node=node.wl_id) as stub:
        created = (await stub.PublishOffer(sf.PublishOfferRequest(offer=offer("o-1", "12.50")), timeout=5)).offer
        assert (created.exporter_wl, created.revision, created.unit_price.amount) == ("wl-a", 1, "12.50")
        assert created.create_time.seconds > 0

        with pytest.raises(grpc.aio.AioRpcError) as dup:
            await stub.PublishOffer(sf.PublishOfferRequest(offer=offer("o-1")), timeout=5)
        assert dup.value.code() == grpc.StatusCode.ALREADY_EXISTS

        updated = (await stub.UpdateOffer(sf.UpdateOfferRequest(offer=offer("o-1", "13.00", stock=0)),
                                          timeout=5)).offer
        assert (updated.revision, updated.unit_price.amount, updated.stock) == (2, "13.00", 0)
        assert updated.create_time == created.create_time

        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.UpdateOffer(sf.UpdateOfferRequest(offer=offer("o-404")), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        await stub.WithdrawOffer(sf.WithdrawOfferRequest(offer_id="o-1"), timeout=5)
        await stub.WithdrawOffer(sf.WithdrawOfferRequest(offer_id="o-1"), timeout=5)  # idempotent
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await stub.UpdateOffer(sf.UpdateOfferRequest(offer=offer("o-1")), timeout=5)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    # Three changes, three feed sequences; the tombstone stays.
    assert await _stored(node) == (1, 3)


async def test_only_this_wls_apps_publish(pki: PkiFixture, node: CatalogNode) -> None:
    for who in (Identity.app("wl-b", "shop"), Identity.ops("alice"), Identity.wl("wl-b")):
        async with storefront(pki, node.server.port, who, node=node.wl_id) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.PublishOffer(sf.PublishOfferRequest(offer=offer("o-1")), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, who
    assert await _stored(node) == (0, 0)


async def test_reads_allowed_to_own_apps_and_operators_only(pki: PkiFixture, node: CatalogNode) -> None:
    for who in (SHOP, Identity.ops("alice")):
        async with storefront(pki, node.server.port, who, node=node.wl_id) as stub:
            state = (await stub.GetNodeState(sf.GetNodeStateRequest(), timeout=5)).state
            assert (state.wl_id, state.policy_version) == ("wl-a", 1)
            assert (await stub.ListImportedOffers(sf.ListImportedOffersRequest(), timeout=5)).offers == []
    async with storefront(pki, node.server.port, Identity.app("wl-b", "shop"), node=node.wl_id) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListImportedOffers(sf.ListImportedOffersRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason_of(err.value)[0] == "NOT_THIS_WL"


async def test_checkout_of_an_offer_not_imported_is_not_found(pki: PkiFixture, node: CatalogNode) -> None:
    async with storefront(pki, node.server.port, SHOP, node=node.wl_id) as stub:
        for call, req, reason in (
                (stub.Checkout, sf.CheckoutRequest(idempotency_key="k", imported_offer_id="wl-b:o", quantity=1,
                                  buyer_reference="member-1"),
                 "OFFER_NOT_FOUND"),
                (stub.GetCheckout, sf.GetCheckoutRequest(checkout_id="c"), "CHECKOUT_NOT_FOUND")):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(req, timeout=5)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            assert reason_of(err.value)[0] == reason
