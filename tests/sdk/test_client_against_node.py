"""The SDK against a real CP and real WL nodes over mTLS: offers, catalog, checkout, errors, pinning.

Every store runs on SQLite and on PostgreSQL (``node_dbs``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, offer
from tests.wl_node.conftest import eventually
from tests.wl_node.test_cross_wl_trade import EXPORTER, World, world
from wl_node.catalog.tables import offers as offers_table
from wl_node.checkout.tables import checkouts as checkouts_table
from wl_node.orders.tables import orders as orders_table
from xcwl_sdk import (
    AlreadyExistsError,
    ApiError,
    ClientConfig,
    InvalidArgumentError,
    NotFoundError,
    StorefrontClient,
    UnavailableError,
    app_credentials,
)
from xporty.cp.v1 import admin_service_pb2, policy_pb2
from xporty.node.v1 import storefront_pb2
from xwl_runtime.identity import Identity

FAST = ClientConfig(timeout_s=10.0, checkout_timeout_s=20.0)


def _client(w: World, wl_id: str, *, node_wl: str | None = None, port_of: str | None = None):  # noqa: ANN202
    creds = app_credentials(w.pki.dir.root, wl_id, "shop")
    return StorefrontClient.connect(f"127.0.0.1:{w.nodes[port_of or wl_id].port}", creds, node_wl=node_wl,
                                    config=FAST)


async def _rows(w: World, wl_id: str, table: sa.Table) -> list[sa.Row[tuple[object, ...]]]:
    async with w.nodes[wl_id].engine.connect() as conn:
        return list((await conn.execute(sa.select(table))).all())


async def test_publish_update_withdraw_list_and_checkout_with_a_retried_duplicate(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    for wl_id in (EXPORTER, "wl-b"):
        pki.material(Identity.app(wl_id, "shop"))
    async with world(tmp_path, pki, node_dbs, ["wl-b"]) as w:
        async with _client(w, EXPORTER) as shop_a:
            stored = await shop_a.publish_offer(offer("o-1", "12.50", currency="XPY-A", stock=5))
            assert stored.exporter_wl == EXPORTER and stored.offer_id == "o-1"
            updated = await shop_a.update_offer(offer("o-1", "12.50", currency="XPY-A", stock=4, title="Renamed"))
            assert updated.title == "Renamed" and updated.revision > stored.revision
            await shop_a.publish_offer(offer("o-gone", "1.00", currency="XPY-A"))
            await shop_a.withdraw_offer("o-gone")

        async with _client(w, "wl-b") as shop_b:
            async def imported() -> bool:
                ids = {o.imported_offer_id for o in await shop_b.list_imported_offers(source_wl=EXPORTER)}
                return ids == {"wl-a:o-1"}

            await eventually(imported, timeout=20)
            (listed,) = await shop_b.list_imported_offers()
            assert listed.title == "Renamed" and listed.price.currency == "XPY-B"
            assert listed.price.amount == "25.00"  # FX 2, converted by the importer

            checkouts = w.nodes["wl-b"].checkouts
            assert checkouts is not None
            await eventually(lambda: checkouts.tokens.get(EXPORTER) is not None, timeout=20)
            first = await shop_b.checkout("wl-a:o-1", 2, buyer_reference="m-1", idempotency_key="k-1")
            assert first.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED
            assert first.total.amount == "50.00" and first.total.currency == "XPY-B"
            again = await shop_b.checkout("wl-a:o-1", 2, buyer_reference="m-1", idempotency_key="k-1")
            assert (again.checkout_id, again.order_id) == (first.checkout_id, first.order_id)
            fetched = await shop_b.get_checkout(first.checkout_id)
            assert fetched.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED

            fresh = await shop_b.checkout("wl-a:o-1", 1, buyer_reference="m-2")  # a generated key: a new purchase
            assert fresh.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED
            assert fresh.checkout_id != first.checkout_id

            state = (await shop_b.node_state()).state
            assert state.wl_id == "wl-b" and state.policy_version > 0
            watched = shop_b.watch_node_state(interval_s=0.05)
            assert (await anext(watched)).policy_version == state.policy_version
            await watched.aclose()

        orders = await _rows(w, EXPORTER, orders_table)
        assert sorted(o.quantity for o in orders) == [1, 2]  # the duplicate made no second order
        (stock,) = [r.stock for r in await _rows(w, EXPORTER, offers_table) if r.offer_id == "o-1"]
        assert stock == 1


async def test_errors_are_typed_with_reason_and_details_and_nothing_is_persisted(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    for wl_id in (EXPORTER, "wl-b"):
        pki.material(Identity.app(wl_id, "shop"))
    async with world(tmp_path, pki, node_dbs, ["wl-b"]) as w:
        async with _client(w, EXPORTER) as shop_a:
            await shop_a.publish_offer(offer("o-1", "3.00", currency="XPY-A"))
            with pytest.raises(AlreadyExistsError) as dup:
                await shop_a.publish_offer(offer("o-1", "3.00", currency="XPY-A"))
            assert dup.value.code is grpc.StatusCode.ALREADY_EXISTS and dup.value.reason
            with pytest.raises(InvalidArgumentError) as bad:
                await shop_a.publish_offer(offer("o-2", "-1", currency="XPY-A"))
            assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
            assert bad.value.violations and bad.value.violations[0].field
        assert [r.offer_id for r in await _rows(w, EXPORTER, offers_table)] == ["o-1"]

        async with _client(w, "wl-b") as shop_b:
            with pytest.raises(NotFoundError) as missing:
                await shop_b.checkout("wl-a:nope", 1, buyer_reference="m-1")
            assert missing.value.reason == "OFFER_NOT_FOUND"
            assert isinstance(missing.value, ApiError)
            alerts = shop_b.watch_pair_alerts()  # the pair is far below its alert level: nothing open, nothing sent
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(alerts), timeout=0.5)
            await alerts.aclose()
        assert await _rows(w, EXPORTER, orders_table) == []

        # wl-b's app dialling wl-a's node, expecting its own WL: the handshake fails, no request is served.
        async with _client(w, "wl-b", port_of=EXPORTER) as wrong:
            with pytest.raises(UnavailableError) as refused:
                await wrong.list_imported_offers()
        assert refused.value.code is grpc.StatusCode.UNAVAILABLE and refused.value.reason == ""


async def test_a_refused_checkout_carries_its_reason_and_persists_nothing(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    for wl_id in (EXPORTER, "wl-b"):
        pki.material(Identity.app(wl_id, "shop"))
    async with world(tmp_path, pki, node_dbs, ["wl-b"]) as w:
        async with _client(w, EXPORTER) as shop_a:
            await shop_a.publish_offer(offer("o-1", "3.00", currency="XPY-A"))
        async with _client(w, "wl-b") as shop_b:
            async def imported() -> bool:
                return [o.imported_offer_id for o in await shop_b.list_imported_offers()] == ["wl-a:o-1"]

            await eventually(imported, timeout=20)
            paused = await w.admin("UpdatePairPolicy", admin_service_pb2.UpdatePairPolicyRequest(
                wl_a=EXPORTER, wl_b="wl-b", status=policy_pb2.RELATIONSHIP_STATUS_PAUSED, reason="test"))

            async def applied() -> bool:
                return (await shop_b.node_state()).state.policy_version >= paused.version  # type: ignore[attr-defined]

            await eventually(applied, timeout=20)
            # A PAUSED pair sells nothing: the importer no longer offers wl-a's offers at all.
            with pytest.raises(NotFoundError) as refused:
                await shop_b.checkout("wl-a:o-1", 1, buyer_reference="m-1", idempotency_key="k-paused")
            assert await shop_b.list_imported_offers() == []
        assert refused.value.code is grpc.StatusCode.NOT_FOUND and refused.value.reason == "OFFER_NOT_FOUND"
        assert await _rows(w, EXPORTER, orders_table) == []
        assert await _rows(w, "wl-b", checkouts_table) == []
