"""JWT refusals write nothing; CancelOrder restores stock once; GetOrder serves only the importer that ordered."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.support.pki import PkiFixture
from tests.wl_node.orders.harness import Exporter, auth, place_request, start_exporter, token
from wl_node.orders.tables import ledger_outbox, order_idempotency, order_ledger, orders
from xporty.trader.v1 import order_pb2
from xporty.trader.v1 import trader_service_pb2 as pb
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.pki import new_private_key
from xwl_runtime.tokens import bearer_metadata


@pytest.fixture
async def exporter(pki: PkiFixture, db_url: str) -> AsyncIterator[Exporter]:
    node = await start_exporter(pki, db_url)
    await node.add_offer("o1", stock=10)
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def sqlite_exporter(pki: PkiFixture, sqlite_db_url: str) -> AsyncIterator[Exporter]:
    node = await start_exporter(pki, sqlite_db_url)
    await node.add_offer("o1", stock=10)
    try:
        yield node
    finally:
        await node.stop()


async def test_token_refusals_are_unauthenticated_and_write_nothing(exporter: Exporter) -> None:
    stub = exporter.stub("wl-b")
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    cases = {
        "TOKEN_MISSING": (),
        "TOKEN_EXPIRED": bearer_metadata(token("wl-b", now=long_ago)),
        "TOKEN_WRONG_AUDIENCE": bearer_metadata(token("wl-b", audience="wl-c")),
        "TOKEN_SUBJECT_MISMATCH": bearer_metadata(token("wl-c")),  # wl-c's token in wl-b's hands
        "TOKEN_UNKNOWN_KEY": bearer_metadata(token("wl-b", key=new_private_key())),
        "TOKEN_INVALID": (("authorization", "Bearer not-a-jwt"),),
    }
    for reason, metadata in cases.items():
        for call, request in (
            (stub.PlaceOrder, place_request(f"k-{reason}")),
            (stub.CancelOrder, pb.CancelOrderRequest(idempotency_key="c", order_id="ord_x")),
            (stub.GetOrder, pb.GetOrderRequest(idempotency_key="k")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(request, metadata=metadata, timeout=10)
            remote = decode_rpc_error(err.value)
            assert (remote.code, remote.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    for tbl in (orders, order_idempotency, order_ledger, ledger_outbox):
        assert await exporter.count(tbl) == 0
    assert await exporter.stock("o1") == 10


async def test_non_wl_callers_are_refused_before_the_token_is_read(sqlite_exporter: Exporter, pki: PkiFixture) -> None:
    from xporty.trader.v1 import trader_service_pb2_grpc as pb_grpc
    from xwl_runtime.identity import Identity
    from xwl_runtime.tls import secure_channel

    async with secure_channel(sqlite_exporter.target, pki.material(Identity.ops("tester")),
                              expected=sqlite_exporter.expected) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.TraderServiceStub(channel).PlaceOrder(place_request("k"), metadata=auth("wl-b"), timeout=10)
    assert decode_rpc_error(err.value).code is grpc.StatusCode.PERMISSION_DENIED
    assert await sqlite_exporter.count(order_idempotency) == 0


async def test_cancel_restores_stock_exactly_once(exporter: Exporter) -> None:
    stub = exporter.stub("wl-b")
    placed = (await stub.PlaceOrder(place_request("k1", qty=4), metadata=auth("wl-b"), timeout=10)).order
    assert await exporter.stock("o1") == 6
    for key in ("cancel-1", "cancel-1", "cancel-2"):
        resp = await stub.CancelOrder(pb.CancelOrderRequest(idempotency_key=key, order_id=placed.order_id,
                                                            reason="IMPORT_NOT_FINALIZED"),
                                      metadata=auth("wl-b"), timeout=10)
        assert resp.order.status == order_pb2.ORDER_STATUS_CANCELLED
        assert resp.order.reason == "IMPORT_NOT_FINALIZED"
    assert await exporter.stock("o1") == 10
    assert await exporter.count(order_ledger, order_ledger.c.kind == "EXPORT_REVERSAL") == 1
    assert await exporter.count(ledger_outbox, ledger_outbox.c.kind == "ORDER_CANCELLED") == 1
    got = await stub.GetOrder(pb.GetOrderRequest(idempotency_key="k1"), metadata=auth("wl-b"), timeout=10)
    assert got.order.status == order_pb2.ORDER_STATUS_CANCELLED
    # The PlaceOrder replay is the stored response (Stripe semantics); GetOrder tells the current state.
    replay = await stub.PlaceOrder(place_request("k1", qty=4), metadata=auth("wl-b"), timeout=10)
    assert replay.order.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert await exporter.stock("o1") == 10


async def test_orders_are_visible_only_to_the_importer_that_placed_them(sqlite_exporter: Exporter) -> None:
    stub = sqlite_exporter.stub("wl-b")
    placed = (await stub.PlaceOrder(place_request("k1"), metadata=auth("wl-b"), timeout=10)).order
    other = sqlite_exporter.stub("wl-c")
    for request in (pb.GetOrderRequest(order_id=placed.order_id), pb.GetOrderRequest(idempotency_key="k1")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await other.GetOrder(request, metadata=auth("wl-c"), timeout=10)
        assert decode_rpc_error(err.value).reason == "ORDER_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await other.CancelOrder(pb.CancelOrderRequest(idempotency_key="c", order_id=placed.order_id),
                                metadata=auth("wl-c"), timeout=10)
    assert decode_rpc_error(err.value).code is grpc.StatusCode.NOT_FOUND
    assert await sqlite_exporter.stock("o1") == 9
    mine = await sqlite_exporter.stub("wl-b").GetOrder(pb.GetOrderRequest(order_id=placed.order_id),
                                                metadata=auth("wl-b"), timeout=10)
    assert mine.order == placed


async def test_idempotency_records_are_kept_24h_then_purged(sqlite_exporter: Exporter) -> None:
    await sqlite_exporter.stub("wl-b").PlaceOrder(place_request("k1"), metadata=auth("wl-b"), timeout=10)
    records = sqlite_exporter.orders.desk._idem  # noqa: SLF001
    created = dt.datetime.now(dt.UTC)
    runner = sqlite_exporter.orders.runner
    assert await runner.tx(lambda c: records.purge_expired(c, created + dt.timedelta(hours=24))) == 0
    assert await runner.tx(lambda c: records.purge_expired(c, created + dt.timedelta(hours=49))) == 1
    assert await sqlite_exporter.count(orders) == 1  # the order itself stays for reconciliation
    with pytest.raises(ValueError):
        type(records)(retention=dt.timedelta(hours=23))
