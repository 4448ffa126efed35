"""The order desk tells a settling guard (the local imbalance guard's ``DeskGuard``) each order's outcome at once.

No upkeep loop runs here: every reservation must be resolved by the desk itself, before PlaceOrder answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import grpc
import pytest

from tests.support.pki import PkiFixture
from tests.wl_node.orders.harness import EXPORTER, Exporter, auth, place_request, policy_view, start_exporter
from wl_node.policy.state import PolicyState
from wl_node.risk.ledger_view import DeskGuard
from wl_node.risk.local_guard import LocalGuard
from xporty.trader.v1 import order_pb2
from xwl_runtime.clock import SystemClock
from xwl_runtime.errors import decode_rpc_error

IMPORTER = "wl-b"


@dataclass
class Guarded:
    exporter: Exporter
    guard: LocalGuard
    desk_guard: DeskGuard

    def balance(self) -> tuple[Decimal, Decimal, int]:
        b = self.guard.balance(EXPORTER, IMPORTER)
        return b.net, b.in_flight_up, self.desk_guard.in_flight


@pytest.fixture
async def guarded(pki: PkiFixture, db_url: str) -> AsyncIterator[Guarded]:
    view = policy_view(EXPORTER, 1, [IMPORTER, "wl-c"], imbalance_limit="25")
    state = PolicyState(EXPORTER, SystemClock(), dt.timedelta(minutes=10))
    await state.apply(view)
    guard = LocalGuard(state)
    guard.load([])
    desk_guard = DeskGuard(guard, SystemClock())
    node = await start_exporter(pki, db_url, view=view, guards=[desk_guard])
    try:
        yield Guarded(node, guard, desk_guard)
    finally:
        await node.stop()


async def _place(g: Guarded, key: str, **kw: object) -> order_pb2.Order:
    resp = await g.exporter.stub(IMPORTER).PlaceOrder(place_request(key, **kw), metadata=auth(IMPORTER), timeout=10)
    return resp.order


async def test_confirmed_denied_and_refused_orders_are_settled_before_the_answer(guarded: Guarded) -> None:
    await guarded.exporter.add_offer("o1", stock=1)  # price 10.00 at reference rate 1.00
    assert (await _place(guarded, "k1")).status == order_pb2.ORDER_STATUS_CONFIRMED
    assert guarded.balance() == (Decimal(10), Decimal(0), 0)

    denied = await _place(guarded, "k2")  # out of stock: committed as DENIED, the reservation is freed
    assert (denied.status, denied.reason) == (order_pb2.ORDER_STATUS_DENIED, "OUT_OF_STOCK")
    assert guarded.balance() == (Decimal(10), Decimal(0), 0)

    with pytest.raises(grpc.aio.AioRpcError) as info:  # stale price: raised inside the transaction, rolled back
        await _place(guarded, "k3", price="9.00")
    assert decode_rpc_error(info.value).reason == "STALE_PRICE"
    assert guarded.balance() == (Decimal(10), Decimal(0), 0)

    assert (await _place(guarded, "k1")).status == order_pb2.ORDER_STATUS_CONFIRMED  # a replay reserves nothing
    assert guarded.balance() == (Decimal(10), Decimal(0), 0)


async def test_the_limit_counts_what_the_desk_confirmed(guarded: Guarded) -> None:
    await guarded.exporter.add_offer("o1", stock=10)
    assert [(await _place(guarded, f"k{i}")).status for i in range(2)] == [order_pb2.ORDER_STATUS_CONFIRMED] * 2
    with pytest.raises(grpc.aio.AioRpcError) as info:  # 20 confirmed + 10 > 25
        await _place(guarded, "k-over")
    err = decode_rpc_error(info.value)
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "IMBALANCE_LIMIT")
    assert guarded.balance() == (Decimal(20), Decimal(0), 0)
    assert await guarded.exporter.stock("o1") == 8
