"""The whole product on loopback: a real CP and real WL nodes built by their composition roots.

An exporter publishes an offer through its local API, the importers' sync imports it priced with the CP's FX,
and members' Checkouts at the importers become orders at the exporter (mTLS + JWT from the CP), with stock,
orders and both sides consistent. Runs with every store on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

from cp_server.app import CpApp, build_cp
from cp_server.settings import CpSettings
from tests.support.pki import PkiFixture
from tests.support.trust import import_wls
from tests.wl_node.catalog.helpers import DbFactory, offer, storefront
from tests.wl_node.conftest import OPS, eventually, node_settings
from wl_node.app import NodeApp, build_node
from wl_node.catalog.tables import offers as offers_table
from wl_node.checkout.tables import checkouts as checkouts_table
from wl_node.orders.tables import orders as orders_table
from xporty.cp.v1 import admin_service_pb2, admin_service_pb2_grpc, policy_pb2, registry_pb2
from xporty.node.v1 import storefront_pb2, storefront_service_pb2
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

RPC = 20.0
DECIDED_WITHIN = 60.0  # a member gives up on a checkout still undecided after this long
EXPORTER = "wl-a"


@dataclass
class World:
    pki: PkiFixture
    cp: CpApp
    nodes: dict[str, NodeApp] = field(default_factory=dict)

    async def admin(self, method: str, request: object) -> object:
        async with secure_channel(f"127.0.0.1:{self.cp.port}", self.pki.material(OPS),
                                  expected=Identity.cp()) as channel:
            return await getattr(admin_service_pb2_grpc.AdminServiceStub(channel), method)(request, timeout=RPC)


@asynccontextmanager
async def world(tmp_path: Path, pki: PkiFixture, dbs: DbFactory, importers: list[str],
                cp_settings: Mapping[str, Any] | None = None) -> AsyncIterator[World]:
    """A CP, the exporter wl-a and ``importers``, each wl-a → importer direction open at FX 2 with a large limit
    (``cp_settings``: more CpSettings fields)."""
    cp = await build_cp(CpSettings(db_url=dbs("cp"), pki_dir=pki.dir.root, listen="127.0.0.1:0",
                                   enroll_listen="127.0.0.1:0", heartbeat_interval=dt.timedelta(seconds=1),
                                   **(cp_settings or {})))
    w = World(pki, cp)
    try:
        wls = [EXPORTER, *importers]
        for wl_id in wls:
            await w.admin("RegisterWl", admin_service_pb2.RegisterWlRequest(white_label=registry_pb2.WhiteLabel(
                wl_id=wl_id, name=wl_id, currency=f"XPY-{wl_id[-1].upper()}", currency_decimals=2,
                reference_rate="1", trader_endpoint="127.0.0.1:9")))
        await import_wls(cp, pki, *wls)  # offline-issued node certificates, recorded as an operator would
        for wl_id in wls:
            settings = replace(node_settings(tmp_path / wl_id, pki, f"127.0.0.1:{cp.port}"), wl_id=wl_id,
                               db_url=dbs(f"node-{wl_id}"), order_timeout=dt.timedelta(seconds=5))
            w.nodes[wl_id] = await build_node(settings)
            await w.admin("UpdateWl", admin_service_pb2.UpdateWlRequest(
                wl_id=wl_id, trader_endpoint=f"127.0.0.1:{w.nodes[wl_id].port}"))
        for importer in importers:
            await w.admin("UpdatePairPolicy", admin_service_pb2.UpdatePairPolicyRequest(
                wl_a=EXPORTER, wl_b=importer, status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE,
                imbalance_limit="1000000", fx_rate="2", force_fx=True, reason="test"))
            await w.admin("UpdateDirectionPolicy", admin_service_pb2.UpdateDirectionPolicyRequest(
                exporter_wl=EXPORTER, importer_wl=importer, import_enabled=True, destination_visible=True,
                reason="test"))
        yield w
    finally:
        for node in w.nodes.values():
            await node.stop(0)
        await cp.stop(0)


async def _publish(w: World, offer_id: str, price: str, stock: int) -> None:
    async with storefront(w.pki, w.nodes[EXPORTER].port, Identity.app(EXPORTER, "shop")) as api:
        await api.PublishOffer(storefront_service_pb2.PublishOfferRequest(
            offer=offer(offer_id, price, currency="XPY-A", stock=stock)), timeout=RPC)


async def _ready_to_buy(w: World, importer: str, imported_offer_id: str) -> None:
    """Wait until the importer shows the offer and has a token for the exporter (a probe checkout of 0 is refused)."""
    async with storefront(w.pki, w.nodes[importer].port, Identity.app(importer, "shop")) as api:
        async def imported() -> bool:
            try:
                await api.GetImportedOffer(storefront_service_pb2.GetImportedOfferRequest(
                    imported_offer_id=imported_offer_id), timeout=RPC)
            except grpc.aio.AioRpcError:
                return False
            return True

        await eventually(imported, timeout=20)
    checkouts = w.nodes[importer].checkouts
    assert checkouts is not None
    await eventually(lambda: checkouts.tokens.get(EXPORTER) is not None, timeout=20)


async def _stock(w: World, offer_id: str) -> int:
    async with w.nodes[EXPORTER].engine.connect() as conn:
        return int((await conn.execute(sa.select(offers_table.c.stock)
                                       .where(offers_table.c.offer_id == offer_id))).scalar_one())


async def test_checkout_across_two_nodes_confirms_and_moves_stock(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-b"]) as w:
        await _publish(w, "o-1", "12.50", 5)
        await _ready_to_buy(w, "wl-b", "wl-a:o-1")
        async with storefront(pki, w.nodes["wl-b"].port, Identity.app("wl-b", "shop")) as api:
            async def checkout(key: str, quantity: int) -> storefront_pb2.Checkout:
                resp = await api.Checkout(storefront_service_pb2.CheckoutRequest(
                    idempotency_key=key, imported_offer_id="wl-a:o-1", quantity=quantity, buyer_reference="m-1"),
                    timeout=RPC)
                return resp.checkout

            async def completes() -> bool:
                try:
                    return (await checkout("k-1", 2)).status == storefront_pb2.CHECKOUT_STATUS_COMPLETED
                except grpc.aio.AioRpcError:  # refused early until the importer holds a token
                    return False

            await eventually(completes, timeout=20)
            first = await checkout("k-1", 2)  # replay: the same checkout, no second order
            assert first.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED
            assert first.total.amount == "50.00" and first.total.currency == "XPY-B"
            assert first.order_id
        assert await _stock(w, "o-1") == 3


async def test_no_oversell_200_concurrent_checkouts_from_3_importers_on_stock_50(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    importers = ["wl-b", "wl-c", "wl-d"]
    async with world(tmp_path, pki, node_dbs, importers) as w:
        await _publish(w, "hot", "3.00", 50)
        for importer in importers:
            await _ready_to_buy(w, importer, "wl-a:hot")

        async def buy(i: int) -> storefront_pb2.Checkout:
            importer = importers[i % 3]
            async with storefront(pki, w.nodes[importer].port, Identity.app(importer, "shop")) as api:
                request = storefront_service_pb2.CheckoutRequest(
                    idempotency_key=f"k-{i}", imported_offer_id="wl-a:hot", quantity=1, buyer_reference=f"m-{i}")
                last = "no answer"
                deadline = asyncio.get_running_loop().time() + DECIDED_WITHIN
                while asyncio.get_running_loop().time() < deadline:  # the member retries with the same key
                    try:
                        checkout = (await api.Checkout(request, timeout=RPC)).checkout
                    except grpc.aio.AioRpcError as err:
                        if err.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE):
                            last = f"{err.code().name}: {err.details()}"
                            await asyncio.sleep(0.05)
                            continue
                        raise
                    if checkout.status != storefront_pb2.CHECKOUT_STATUS_PENDING:
                        return checkout
                    last = "PENDING"
                    await asyncio.sleep(0.05)
                raise AssertionError(f"checkout k-{i} at {importer} undecided after {DECIDED_WITHIN} s; last: {last}")

        results = await asyncio.gather(*(buy(i) for i in range(200)))
        completed = [c for c in results if c.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED]
        assert len(completed) == 50
        assert await _stock(w, "hot") == 0
        async with w.nodes[EXPORTER].engine.connect() as conn:
            confirmed = (await conn.execute(sa.select(sa.func.count()).select_from(orders_table).where(
                orders_table.c.status == "CONFIRMED"))).scalar_one()
        assert confirmed == 50
        # Every completed checkout at an importer is one confirmed order at the exporter, nothing orphaned.
        finalized = 0
        for importer in importers:
            async with w.nodes[importer].engine.connect() as conn:
                finalized += (await conn.execute(sa.select(sa.func.count()).select_from(checkouts_table).where(
                    checkouts_table.c.status == "COMPLETED"))).scalar_one()
        assert finalized == 50
