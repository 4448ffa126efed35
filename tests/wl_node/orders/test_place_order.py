"""PlaceOrder over real mTLS + JWT: no oversell, idempotency under concurrency, price checks, policy denials."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.support.pki import PkiFixture
from tests.wl_node.orders.harness import (
    EXPORTER,
    IMPORTERS,
    Exporter,
    auth,
    place_request,
    policy_view,
    start_exporter,
)
from wl_node.orders.tables import ledger_outbox, order_idempotency, order_ledger, orders
from xporty.cp.v1 import policy_pb2
from xporty.trader.v1 import order_pb2
from xporty.trader.v1 import trader_service_pb2 as pb
from xwl_runtime.errors import decode_rpc_error

CONFIRMED = order_pb2.ORDER_STATUS_CONFIRMED
DENIED = order_pb2.ORDER_STATUS_DENIED


@pytest.fixture
async def exporter(pki: PkiFixture, db_url: str) -> AsyncIterator[Exporter]:
    node = await start_exporter(pki, db_url)
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def sqlite_exporter(pki: PkiFixture, sqlite_db_url: str) -> AsyncIterator[Exporter]:
    """For checks of request handling that do not depend on the backend (keeps the suite fast)."""
    node = await start_exporter(pki, sqlite_db_url)
    try:
        yield node
    finally:
        await node.stop()


async def test_no_oversell_200_concurrent_orders_from_3_importers_on_stock_50(exporter: Exporter) -> None:
    await exporter.add_offer("o1", stock=50)
    stubs = {wl: exporter.stub(wl) for wl in IMPORTERS}
    metas = {wl: auth(wl) for wl in IMPORTERS}

    async def one(i: int) -> order_pb2.Order:
        wl = IMPORTERS[i % 3]
        resp = await stubs[wl].PlaceOrder(place_request(f"k-{i}"), metadata=metas[wl], timeout=30, wait_for_ready=True)
        return resp.order

    results = await asyncio.gather(*(one(i) for i in range(200)))
    statuses = Counter(o.status for o in results)
    assert statuses[CONFIRMED] == 50
    assert statuses[DENIED] == 150
    assert {o.reason for o in results if o.status == DENIED} == {"OUT_OF_STOCK"}
    assert await exporter.stock("o1") == 0
    assert await exporter.count(orders, orders.c.status == "CONFIRMED") == 50
    assert await exporter.count(order_ledger, order_ledger.c.kind == "EXPORT") == 50
    assert await exporter.count(ledger_outbox, ledger_outbox.c.kind == "EXPORT_CONFIRMED") == 50
    confirmed = [o for o in results if o.status == CONFIRMED]
    assert all(o.policy_version == 1 and o.fx_version == 1 and o.correlation_id for o in confirmed)
    assert sum(o.quantity for o in confirmed) == 50


async def test_retry_storm_same_key_three_times_concurrently_gives_one_order(exporter: Exporter) -> None:
    await exporter.add_offer("o1", stock=1000)
    stubs = {wl: exporter.stub(wl) for wl in IMPORTERS}

    async def send(i: int) -> order_pb2.Order:
        wl = IMPORTERS[i % 3]
        resp = await stubs[wl].PlaceOrder(place_request(f"storm-{i}", qty=2), metadata=auth(wl), timeout=30,
                                          wait_for_ready=True)
        return resp.order

    results = await asyncio.gather(*(send(i) for i in range(40) for _ in range(3)))
    by_key: dict[tuple[str, str], set[str]] = {}
    for o in results:
        by_key.setdefault((o.importer_wl, o.idempotency_key), set()).add(o.order_id)
    assert len(by_key) == 40
    assert all(len(ids) == 1 for ids in by_key.values())  # every replay answered with the same order
    assert await exporter.count(orders) == 40
    assert await exporter.stock("o1") == 1000 - 80


async def test_same_key_from_another_importer_is_another_order(sqlite_exporter: Exporter) -> None:
    await sqlite_exporter.add_offer("o1", stock=10)
    a = await sqlite_exporter.stub("wl-b").PlaceOrder(place_request("same"), metadata=auth("wl-b"), timeout=10)
    b = await sqlite_exporter.stub("wl-c").PlaceOrder(place_request("same"), metadata=auth("wl-c"), timeout=10)
    assert a.order.order_id != b.order.order_id
    assert await sqlite_exporter.stock("o1") == 8


async def test_same_key_with_a_different_request_is_refused_and_changes_nothing(exporter: Exporter) -> None:
    await exporter.add_offer("o1", stock=10)
    stub = exporter.stub("wl-b")
    first = await stub.PlaceOrder(place_request("k1", qty=1), metadata=auth("wl-b"), timeout=10)
    replay = await stub.PlaceOrder(place_request("k1", qty=1), metadata=auth("wl-b"), timeout=10)
    assert replay.order == first.order
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.PlaceOrder(place_request("k1", qty=3), metadata=auth("wl-b"), timeout=10)
    remote = decode_rpc_error(err.value)
    assert remote.code is grpc.StatusCode.INVALID_ARGUMENT
    assert remote.reason == "IDEMPOTENCY_KEY_REUSED"
    assert await exporter.stock("o1") == 9
    assert await exporter.count(orders) == 1


async def test_stale_price_or_fx_version_is_refused_with_the_current_terms_and_nothing_stored(
    exporter: Exporter,
) -> None:
    await exporter.add_offer("o1", stock=10, price="12.50")
    stub = exporter.stub("wl-b")
    for request in (place_request("p1", price="10.00"), place_request("p2", price="12.50", fx_version=7)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PlaceOrder(request, metadata=auth("wl-b"), timeout=10)
        remote = decode_rpc_error(err.value)
        assert remote.code is grpc.StatusCode.FAILED_PRECONDITION
        assert remote.reason == "STALE_PRICE"
        assert remote.metadata == {"current_unit_price": "12.50", "currency": "XPY-A", "current_fx_version": "1",
                                   "offer_id": "o1"}
    assert await exporter.count(orders) == 0
    assert await exporter.count(order_idempotency) == 0
    # Re-priced with the same key: allowed, since the refused attempt stored nothing.
    ok = await stub.PlaceOrder(place_request("p1", price="12.5"), metadata=auth("wl-b"), timeout=10)
    assert ok.order.status == CONFIRMED
    assert ok.order.total.amount == "12.50"


POLICY_REFUSALS = [
    ({"status": policy_pb2.RELATIONSHIP_STATUS_PAUSED}, "PAIR_PAUSED"),
    ({"status": policy_pb2.RELATIONSHIP_STATUS_BLOCKED}, "PAIR_BLOCKED"),
    ({"frozen": True}, "IMPORTS_FROZEN"),
    ({"import_enabled": False}, "IMPORT_DISABLED"),
    ({"visible": False}, "NOT_VISIBLE_TO_IMPORTER"),
    ({"export_delay_s": 10**9}, "OFFER_NOT_YET_EXPORTABLE"),
]


async def test_policy_refusals_deny_the_order_without_touching_stock(exporter: Exporter) -> None:
    await exporter.add_offer("o1", stock=10)
    stub = exporter.stub("wl-b")
    for version, (overrides, reason) in enumerate(POLICY_REFUSALS, start=2):
        await exporter.state.apply(policy_view(EXPORTER, version, IMPORTERS, **overrides))  # type: ignore[arg-type]
        resp = await stub.PlaceOrder(place_request(f"k-{reason}"), metadata=auth("wl-b"), timeout=10)
        assert (resp.order.status, resp.order.reason) == (DENIED, reason)
        assert resp.order.policy_version == version
    assert await exporter.stock("o1") == 10
    assert await exporter.count(order_ledger) == 0
    assert await exporter.count(ledger_outbox) == 0
    # Back to ACTIVE: the next order goes through (a PAUSED pair is reversible).
    await exporter.state.apply(policy_view(EXPORTER, 99, IMPORTERS))
    resp = await stub.PlaceOrder(place_request("k-ok"), metadata=auth("wl-b"), timeout=10)
    assert resp.order.status == CONFIRMED


async def test_unknown_offer_is_denied(sqlite_exporter: Exporter) -> None:
    stub = sqlite_exporter.stub("wl-b")
    resp = await stub.PlaceOrder(place_request("k", offer="nope"), metadata=auth("wl-b"), timeout=10)
    assert (resp.order.status, resp.order.reason) == (DENIED, "OFFER_NOT_FOUND")


INVALID = [
    (place_request(""), "idempotency_key"),
    (place_request("k", qty=0), "quantity"),
    (place_request("k", offer=""), "offer_id"),
    (place_request("k", price="abc"), "expected_unit_price.amount"),
    (place_request("k", price="-1"), "expected_unit_price.amount"),
    (pb.PlaceOrderRequest(idempotency_key="k", offer_id="o1", quantity=1), "expected_unit_price.currency"),
]


async def test_invalid_requests_name_the_field_and_store_nothing(sqlite_exporter: Exporter) -> None:
    await sqlite_exporter.add_offer("o1", stock=10)
    stub = sqlite_exporter.stub("wl-b")
    for request, field in INVALID:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PlaceOrder(request, metadata=auth("wl-b"), timeout=10)
        remote = decode_rpc_error(err.value)
        assert remote.code is grpc.StatusCode.INVALID_ARGUMENT
        assert remote.metadata["field"] == field
    assert await sqlite_exporter.count(order_idempotency) == 0
    assert await sqlite_exporter.count(orders) == 0
