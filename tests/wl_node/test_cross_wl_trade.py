"""The whole product on loopback: a real CP and two real WL nodes built by their composition roots.

An exporter publishes an offer through its local API, the importer's sync imports it priced with the CP's FX,
and a member's Checkout at the importer becomes a confirmed order at the exporter (mTLS + JWT from the CP),
with stock, orders and both ledgers consistent. Runs with the nodes' stores on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

from cp_server.app import build_cp
from cp_server.settings import CpSettings
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, offer, storefront
from tests.wl_node.conftest import OPS, eventually, node_settings
from wl_node.app import NodeApp, build_node
from wl_node.catalog.tables import offers as offers_table
from xporty.cp.v1 import admin_service_pb2, admin_service_pb2_grpc, policy_pb2, registry_pb2
from xporty.node.v1 import storefront_pb2, storefront_service_pb2
from xporty.trader.v1 import offer_pb2
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

RPC = 10.0


async def _admin(pki: PkiFixture, port: int, method: str, request: object) -> object:
    async with secure_channel(f"127.0.0.1:{port}", pki.material(OPS)) as channel:
        return await getattr(admin_service_pb2_grpc.AdminServiceStub(channel), method)(request, timeout=RPC)


async def test_checkout_across_two_nodes_confirms_and_moves_stock(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    cp = await build_cp(CpSettings(db_url=node_dbs("cp"), pki_dir=pki.dir.root, listen="127.0.0.1:0",
                                   enroll_listen="127.0.0.1:0", heartbeat_interval=dt.timedelta(seconds=1)))
    nodes: dict[str, NodeApp] = {}
    try:
        for wl_id, currency in (("wl-a", "XPY-A"), ("wl-b", "XPY-B")):
            await _admin(pki, cp.port, "RegisterWl", admin_service_pb2.RegisterWlRequest(
                white_label=registry_pb2.WhiteLabel(wl_id=wl_id, name=wl_id, currency=currency, currency_decimals=2,
                                                    reference_rate="1", trader_endpoint="127.0.0.1:9")))
        for wl_id in ("wl-a", "wl-b"):
            pki.material(Identity.wl(wl_id))
            settings = replace(node_settings(tmp_path / wl_id, pki, f"127.0.0.1:{cp.port}"), wl_id=wl_id,
                               db_url=node_dbs(f"node-{wl_id}"))
            nodes[wl_id] = await build_node(settings)
            await _admin(pki, cp.port, "UpdateWl", admin_service_pb2.UpdateWlRequest(
                wl_id=wl_id, trader_endpoint=f"127.0.0.1:{nodes[wl_id].port}"))
        # wl-a exports to wl-b at 2 XPY-B per XPY-A, limit large enough for the test.
        await _admin(pki, cp.port, "UpdatePairPolicy", admin_service_pb2.UpdatePairPolicyRequest(
            wl_a="wl-a", wl_b="wl-b", status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, imbalance_limit="100000",
            fx_rate="2", force_fx=True, reason="test"))
        await _admin(pki, cp.port, "UpdateDirectionPolicy", admin_service_pb2.UpdateDirectionPolicyRequest(
            exporter_wl="wl-a", importer_wl="wl-b", import_enabled=True, destination_visible=True, reason="test"))

        async with storefront(pki, nodes["wl-a"].port, Identity.app("wl-a", "shop")) as exporter_api:
            await exporter_api.PublishOffer(storefront_service_pb2.PublishOfferRequest(
                offer=offer("o-1", "12.50", currency="XPY-A", stock=5)), timeout=RPC)

        async with storefront(pki, nodes["wl-b"].port, Identity.app("wl-b", "shop")) as importer_api:
            async def imported() -> bool:
                try:
                    got = await importer_api.GetImportedOffer(
                        storefront_service_pb2.GetImportedOfferRequest(imported_offer_id="wl-a:o-1"), timeout=RPC)
                except Exception:  # noqa: BLE001 - NOT_FOUND until the sync has run
                    return False
                return got.offer.price.amount == "25.00"

            await eventually(imported, timeout=15)
            # The checkout waits for the token the importer fetches ahead of time from the CP.
            async def checkout(key: str, quantity: int) -> storefront_pb2.Checkout:
                resp = await importer_api.Checkout(storefront_service_pb2.CheckoutRequest(
                    idempotency_key=key, imported_offer_id="wl-a:o-1", quantity=quantity, buyer_reference="m-1"),
                    timeout=RPC)
                return resp.checkout

            async def completes() -> bool:
                try:
                    return (await checkout("k-1", 2)).status == storefront_pb2.CHECKOUT_STATUS_COMPLETED
                except Exception:  # noqa: BLE001 - refused early until the importer holds a token
                    return False

            await eventually(completes, timeout=15)
            first = await checkout("k-1", 2)  # replay: the same checkout, no second order
            assert first.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED
            assert first.total.amount == "50.00" and first.total.currency == "XPY-B"
            assert first.order_id

        async with nodes["wl-a"].engine.connect() as conn:
            stock = (await conn.execute(sa.select(offers_table.c.stock)
                                        .where(offers_table.c.offer_id == "o-1"))).scalar_one()
        assert stock == 3
    finally:
        for node in nodes.values():
            await node.stop(0)
        await cp.stop(0)
        await asyncio.sleep(0)


_ = offer_pb2  # the offer helper builds trader.v1 offers
