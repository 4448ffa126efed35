"""The importer's local imbalance guard counts checkouts in flight, from admission until their outcome is known.

The pair wl-a → wl-b has an imbalance limit of 25 reference units and every order is worth 10 (price 10.00 at a
reference rate of 1.00), so two orders fit and a third does not, whether the first two are confirmed, still in
flight at the exporter, in doubt, or left PENDING by a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import grpc
import pytest

from tests.support.pki import PkiFixture
from tests.wl_node.checkout.harness import (
    FAST_CONFIG,
    ROOMY_CONFIG,
    FakeIdentityCp,
    FaultInjector,
    Importer,
    eventually,
    start_importer,
)
from tests.wl_node.orders.harness import Exporter, start_exporter
from wl_node.checkout.component import CheckoutConfig
from wl_node.checkout.tables import checkouts
from xporty.node.v1 import storefront_pb2
from xwl_runtime.errors import decode_rpc_error

PENDING = storefront_pb2.CHECKOUT_STATUS_PENDING
COMPLETED = storefront_pb2.CHECKOUT_STATUS_COMPLETED
FAILED = storefront_pb2.CHECKOUT_STATUS_FAILED
CANCELLED = storefront_pb2.CHECKOUT_STATUS_CANCELLED


@dataclass
class Pair:
    pki: PkiFixture
    exporter: Exporter
    importer: Importer
    faults: FaultInjector
    importer_url: str
    cp_target: str


async def _pair(pki: PkiFixture, db_url: str, importer_url: str, cp: FakeIdentityCp, *, stock: int = 50,
                config: CheckoutConfig = ROOMY_CONFIG, limit: str = "25", loops: bool = True) -> Pair:
    faults = FaultInjector()
    exporter = await start_exporter(pki, db_url, interceptors=[faults])
    await exporter.add_offer("o1", stock=stock)
    importer = await start_importer(pki, importer_url, cp.target, [exporter], config=config,
                                    view_overrides={"imbalance_limit": limit}, with_guard=True, start_loops=loops)
    await _tokens_ready(importer)
    return Pair(pki, exporter, importer, faults, importer_url, cp.target)


@pytest.fixture
async def pair(pki: PkiFixture, db_url: str, importer_url: str, identity_cp: FakeIdentityCp
               ) -> AsyncIterator[Pair]:
    p = await _pair(pki, db_url, importer_url, identity_cp)
    try:
        yield p
    finally:
        await p.importer.stop()
        await p.exporter.stop()


async def _tokens_ready(importer: Importer) -> None:
    """Wait for the token cache (its loop started alone when the node's other loops are held back)."""
    if not importer.lifecycle.running_loops:
        importer.lifecycle.start_loops([importer.checkouts.tokens.run])
    await importer.wait_token()


def _balance(importer: Importer) -> tuple[Decimal, Decimal]:
    assert importer.guard is not None
    b = importer.guard.balance("wl-a", "wl-b")
    return b.net, b.in_flight_up


async def _refused(importer: Importer, key: str) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await importer.checkout(key)
    err = decode_rpc_error(info.value)
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "IMBALANCE_LIMIT"), err
    return dict(err.metadata)


async def test_orders_in_flight_at_the_exporter_count_against_the_headroom(pair: Pair) -> None:
    pair.faults.delay_before_s = 0.4  # both orders sit at the exporter, not yet confirmed
    service = pair.importer.checkouts.service
    first = [asyncio.create_task(pair.importer.checkout(f"k{i}")) for i in range(2)]
    await eventually(lambda: service.reservations_in_flight == 2, timeout=5)
    assert _balance(pair.importer) == (Decimal(0), Decimal(20))

    details = await _refused(pair.importer, "k-over")  # 0 confirmed + 20 in flight + 10 > 25
    assert details["balance"] == "20" and details["limit"] == "25" and details["headroom"] == "5"
    assert details["order_value"] == "10"

    assert [c.status for c in await asyncio.gather(*first)] == [COMPLETED, COMPLETED]
    assert _balance(pair.importer) == (Decimal(20), Decimal(0))
    assert service.reservations_in_flight == 0
    await _refused(pair.importer, "k-over-again")  # now confirmed: still no room
    # A refused checkout stores nothing, and the exporter never saw it.
    assert await pair.importer.count(checkouts) == 2
    assert await pair.exporter.stock("o1") == 48


async def test_a_denied_order_frees_its_reservation(pki: PkiFixture, db_url: str, importer_url: str,
                                                    identity_cp: FakeIdentityCp) -> None:
    p = await _pair(pki, db_url, importer_url, identity_cp, stock=1)
    try:
        assert (await p.importer.checkout("first")).status == COMPLETED
        denied = await p.importer.checkout("second")  # out of stock at the exporter
        assert denied.status == FAILED
        assert _balance(p.importer) == (Decimal(10), Decimal(0))
        assert p.importer.checkouts.service.reservations_in_flight == 0
    finally:
        await p.importer.stop()
        await p.exporter.stop()


async def test_an_in_doubt_checkout_keeps_its_reservation_until_the_reconciler_settles_it(
    pki: PkiFixture, db_url: str, importer_url: str, identity_cp: FakeIdentityCp
) -> None:
    p = await _pair(pki, db_url, importer_url, identity_cp, config=FAST_CONFIG, limit="15")
    try:
        p.faults.delay_after_s = 0.6  # committed at the exporter, answer after the 300 ms deadline
        in_doubt = await p.importer.checkout("lost")
        assert in_doubt.status == PENDING
        assert _balance(p.importer) == (Decimal(0), Decimal(10))
        p.faults.delay_after_s = 0
        await _refused(p.importer, "meanwhile")  # 10 in doubt + 10 > 15
        # The reconciler compensates the in-doubt order (cancelled on both sides): the value is free again.
        await eventually(lambda: p.importer.checkouts.service.reservations_in_flight == 0, timeout=20)
        assert (await p.importer.get(in_doubt.checkout_id)).status == CANCELLED
        assert _balance(p.importer) == (Decimal(0), Decimal(0))
        assert (await p.importer.checkout("after")).status == COMPLETED
        assert _balance(p.importer) == (Decimal(10), Decimal(0))
    finally:
        await p.importer.stop()
        await p.exporter.stop()


async def test_checkouts_a_restart_left_pending_count_in_flight_until_settled(
    pki: PkiFixture, db_url: str, importer_url: str, identity_cp: FakeIdentityCp
) -> None:
    p = await _pair(pki, db_url, importer_url, identity_cp, config=FAST_CONFIG, limit="15", loops=False)
    restarted: Importer | None = None
    try:
        p.faults.delay_after_s = 0.6
        assert (await p.importer.checkout("lost")).status == PENDING  # no reconciler runs in this "crashed" run
        await p.importer.stop()
        p.faults.delay_after_s = 0
        restarted = await start_importer(pki, importer_url, identity_cp.target, [p.exporter], config=FAST_CONFIG,
                                         view_overrides={"imbalance_limit": "15"}, with_guard=True,
                                         start_loops=False)
        await _tokens_ready(restarted)
        service = restarted.checkouts.service
        assert _balance(restarted) == (Decimal(0), Decimal(0))  # a fresh guard: the order is not counted yet
        assert await service.adopt_pending() == 1
        assert await service.adopt_pending() == 0  # adopted once
        assert _balance(restarted) == (Decimal(0), Decimal(10))
        await _refused(restarted, "meanwhile")
        # The reconciler settles it (the exporter confirmed, the import was never finalized: compensated).
        await eventually(lambda: _settled_one(restarted), timeout=20)
        assert service.reservations_in_flight == 0
        assert _balance(restarted) == (Decimal(0), Decimal(0))
    finally:
        if restarted is not None:
            await restarted.stop()
        await p.exporter.stop()


async def _settled_one(importer: Importer) -> bool:
    await asyncio.sleep(0.1)
    return await importer.checkouts.reconciler.reconcile_once() == 1
