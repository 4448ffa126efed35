"""Checkout end to end between two nodes over mTLS + JWT: completion, idempotency, early refusals, CP down."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from tests.support.databases import sqlite_url
from tests.support.pki import PkiFixture
from tests.wl_node.checkout.harness import ROOMY_CONFIG, FakeIdentityCp, FaultInjector, Importer, start_importer
from tests.wl_node.orders.harness import Exporter, auth, policy_view, start_exporter
from wl_node.checkout.tables import checkouts, import_ledger
from wl_node.orders.tables import ledger_outbox, orders
from xporty.cp.v1 import policy_pb2
from xporty.node.v1 import storefront_pb2
from xporty.trader.v1 import order_pb2
from xporty.trader.v1 import trader_service_pb2 as trader_pb
from xwl_runtime.errors import decode_rpc_error

COMPLETED = storefront_pb2.CHECKOUT_STATUS_COMPLETED
FAILED = storefront_pb2.CHECKOUT_STATUS_FAILED


@dataclass
class Pair:
    exporter: Exporter
    importer: Importer
    faults: FaultInjector


@pytest.fixture
async def pair(pki: PkiFixture, db_url: str, importer_url: str, identity_cp: FakeIdentityCp) -> AsyncIterator[Pair]:
    async with _pair(pki, db_url, importer_url, identity_cp) as p:
        yield p


@pytest.fixture
async def sqlite_pair(pki: PkiFixture, tmp_path: Path, identity_cp: FakeIdentityCp) -> AsyncIterator[Pair]:
    """Both nodes on SQLite, for request-handling checks that do not depend on the backend (keeps the suite fast)."""
    async with _pair(pki, sqlite_url(tmp_path, "exporter"), sqlite_url(tmp_path, "importer"), identity_cp) as p:
        yield p


@asynccontextmanager
async def _pair(pki: PkiFixture, db_url: str, importer_url: str, identity_cp: FakeIdentityCp) -> AsyncIterator[Pair]:
    faults = FaultInjector()
    exporter = await start_exporter(pki, db_url, interceptors=[faults])
    await exporter.add_offer("o1", stock=50)
    importer = await start_importer(pki, importer_url, identity_cp.target, [exporter], config=ROOMY_CONFIG)
    await importer.wait_token()
    try:
        yield Pair(exporter, importer, faults)
    finally:
        await importer.stop()
        await exporter.stop()


async def test_checkout_completes_on_both_sides_with_one_correlation_id(pair: Pair) -> None:
    done = await pair.importer.checkout("buy-1", qty=3, cid="cid-from-the-app")
    assert done.status == COMPLETED
    assert done.total.currency == "XPY-B" and done.total.amount == "75.00"
    assert done.correlation_id == "cid-from-the-app"
    order = (await pair.exporter.stub("wl-b").GetOrder(trader_pb.GetOrderRequest(order_id=done.order_id),
                                                       metadata=auth("wl-b"), timeout=5)).order
    assert order.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert order.correlation_id == "cid-from-the-app"
    assert order.idempotency_key == done.checkout_id
    assert await pair.exporter.stock("o1") == 47
    assert await pair.importer.count(import_ledger, import_ledger.c.correlation_id == "cid-from-the-app") == 1
    assert await pair.importer.count(ledger_outbox, ledger_outbox.c.kind == "IMPORT_FINALIZED") == 1
    assert await pair.exporter.count(ledger_outbox, ledger_outbox.c.correlation_id == "cid-from-the-app") == 1
    assert (await pair.importer.get(done.checkout_id)) == done


async def test_replay_returns_the_stored_checkout_and_a_reused_key_is_refused(sqlite_pair: Pair) -> None:
    first = await sqlite_pair.importer.checkout("buy-1")
    again = await sqlite_pair.importer.checkout("buy-1")
    assert again == first
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sqlite_pair.importer.checkout("buy-1", qty=2)
    assert decode_rpc_error(err.value).reason == "IDEMPOTENCY_KEY_REUSED"
    assert await sqlite_pair.exporter.count(orders) == 1


async def test_retry_storm_three_concurrent_sends_per_key_make_one_order(pair: Pair) -> None:
    stub = pair.importer.storefront()
    outcomes: list[str] = []

    async def send(key: str) -> None:
        try:
            outcomes.append(storefront_pb2.CheckoutStatus.Name((await pair.importer.checkout(key, stub=stub)).status))
        except grpc.aio.AioRpcError as err:
            remote = decode_rpc_error(err)
            assert (remote.code, remote.reason) == (grpc.StatusCode.ABORTED, "CHECKOUT_IN_PROGRESS")
            outcomes.append("ABORTED")

    await asyncio.gather(*(send(f"k{i}") for i in range(15) for _ in range(3)))
    assert await pair.exporter.count(orders) == 15
    assert await pair.importer.count(checkouts) == 15
    assert await pair.exporter.stock("o1") == 35
    assert outcomes.count("CHECKOUT_STATUS_COMPLETED") >= 15


async def test_duplicate_while_pending_gets_aborted_with_retry_info(sqlite_pair: Pair) -> None:
    sqlite_pair.faults.delay_before_s = 0.15
    first = asyncio.create_task(sqlite_pair.importer.checkout("slow"))
    await sqlite_pair.faults.entered.wait()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sqlite_pair.importer.checkout("slow")
    assert err.value.code() is grpc.StatusCode.ABORTED
    status = next(status_pb2.Status.FromString(v) for k, v in err.value.trailing_metadata()
                  if k == "grpc-status-details-bin")
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
    assert retry.retry_delay.ToNanoseconds() > 0
    assert (await first).status == COMPLETED


async def test_importer_refuses_early_when_its_policy_says_no_and_stores_nothing(
    pki: PkiFixture, sqlite_db_url: str, tmp_path: Path, identity_cp: FakeIdentityCp
) -> None:
    exporter = await start_exporter(pki, sqlite_db_url)
    importer = await start_importer(pki, sqlite_url(tmp_path, "importer"), identity_cp.target, [exporter])
    refusals = [({"status": policy_pb2.RELATIONSHIP_STATUS_PAUSED}, "PAIR_PAUSED"),
                ({"status": policy_pb2.RELATIONSHIP_STATUS_BLOCKED}, "PAIR_BLOCKED"),
                ({"import_enabled": False}, "IMPORT_DISABLED"), ({"frozen": True}, "IMPORTS_FROZEN")]
    try:
        for version, (overrides, reason) in enumerate(refusals, start=2):
            await importer.state.apply(policy_view("wl-b", version, ["wl-a"], **overrides))  # type: ignore[arg-type]
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await importer.checkout("k")
            remote = decode_rpc_error(err.value)
            assert (remote.code, remote.reason) == (grpc.StatusCode.FAILED_PRECONDITION, reason)
        assert await importer.count(checkouts) == 0
        assert await exporter.count(orders) == 0
    finally:
        await importer.stop()
        await exporter.stop()


async def test_enforcer_refusal_and_unknown_offer_store_nothing(
    pki: PkiFixture, sqlite_db_url: str, tmp_path: Path, identity_cp: FakeIdentityCp
) -> None:
    exporter = await start_exporter(pki, sqlite_db_url)
    importer = await start_importer(pki, sqlite_url(tmp_path, "importer"), identity_cp.target, [exporter],
                                    signal_gate=lambda exp, imp: "DISABLED_BY_SIGNAL" if exp == "wl-a" else None)
    try:
        for offer, code, reason in (("wl-a:o1", grpc.StatusCode.FAILED_PRECONDITION, "DISABLED_BY_SIGNAL"),
                                    ("wl-a:nope", grpc.StatusCode.NOT_FOUND, "OFFER_NOT_FOUND")):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await importer.checkout("k", offer=offer)
            remote = decode_rpc_error(err.value)
            assert (remote.code, remote.reason) == (code, reason)
        assert await importer.count(checkouts) == 0
    finally:
        await importer.stop()
        await exporter.stop()


async def test_invalid_checkout_names_the_field_and_stores_nothing(sqlite_pair: Pair) -> None:
    for kwargs, field in (({"qty": 0}, "quantity"), ({"buyer": ""}, "buyer_reference"), ({"offer": ""},
                                                                                         "imported_offer_id")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sqlite_pair.importer.checkout("k", **kwargs)  # type: ignore[arg-type]
        remote = decode_rpc_error(err.value)
        assert remote.code is grpc.StatusCode.INVALID_ARGUMENT and remote.metadata["field"] == field
    assert await sqlite_pair.importer.count(checkouts) == 0


async def test_cp_stopped_checkout_keeps_working_with_cached_token_and_policy(
    pki: PkiFixture, db_url: str, importer_url: str, identity_cp: FakeIdentityCp
) -> None:
    exporter = await start_exporter(pki, db_url)
    await exporter.add_offer("o1", stock=10)
    importer = await start_importer(pki, importer_url, identity_cp.target, [exporter])
    try:
        await importer.wait_token()
        await identity_cp.stop()  # the CP is gone from here on
        tokens = importer.checkouts.tokens
        cached = tokens._tokens["wl-a"]  # noqa: SLF001
        # Make the token due for refresh (still valid for minutes): the refresh fails, the token stays in use.
        tokens.put("wl-a", cached.token, cached.issued_at - dt.timedelta(minutes=10), cached.expires_at)
        assert await tokens.refresh_due() is False
        assert tokens.get("wl-a") == cached.token
        results = [await importer.checkout(f"k{i}") for i in range(5)]
        assert all(r.status == COMPLETED for r in results)
        assert await exporter.stock("o1") == 5
    finally:
        await importer.stop()
        await exporter.stop()


async def test_no_token_yet_is_unavailable_and_stores_nothing(
    pki: PkiFixture, sqlite_db_url: str, tmp_path: Path
) -> None:
    exporter = await start_exporter(pki, sqlite_db_url)
    # The CP is unreachable from the start: no token was ever cached.
    importer = await start_importer(pki, sqlite_url(tmp_path, "importer"), "127.0.0.1:1", [exporter])
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await importer.checkout("k")
        remote = decode_rpc_error(err.value)
        assert (remote.code, remote.reason) == (grpc.StatusCode.UNAVAILABLE, "TOKEN_UNAVAILABLE")
        assert await importer.count(checkouts) == 0
    finally:
        await importer.stop()
        await exporter.stop()
