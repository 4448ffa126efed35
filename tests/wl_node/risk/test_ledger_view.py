"""The local guard's bridge to the order ledger: rebuild from the node's tables, and the order desk's hook."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from wl_node.checkout.tables import checkouts, import_ledger
from wl_node.orders.gate import OrderIntent
from wl_node.orders.tables import orders
from wl_node.risk.ledger_view import DeskGuard, confirmed_facts
from wl_node.store import open_store
from xwl_runtime.clock import ManualClock
from xwl_runtime.errors import FailedPrecondition

from .test_local_guard import _guard

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _order(order_id: str, status: str, total: str, cid: str = "c", offer: str = "o-1", qty: int = 1) -> dict:
    return dict(order_id=order_id, importer_wl="wl-b", exporter_wl="wl-a", idem_key=order_id, offer_id=offer,
                quantity=qty, currency="XPY-A", unit_price=total, total=total, status=status, reason="",
                policy_version=1, fx_version=1, correlation_id=cid, created_at=NOW, updated_at=NOW)


def _checkout(checkout_id: str, status: str) -> dict:
    return dict(checkout_id=checkout_id, caller="app", idem_key=checkout_id, fingerprint="f",
                imported_offer_id="wl-b:o", exporter_wl="wl-b", source_offer_id="o", quantity=2,
                buyer_reference="m", source_currency="XPY-B", source_unit_price="5", fx_version=1,
                currency="XPY-A", total="5", status=status, reason="", order_id=None, order_key=checkout_id,
                policy_version=1, correlation_id="c", created_at=NOW, updated_at=NOW)


async def test_balances_are_rebuilt_from_the_order_desk_and_checkout_tables(db_url: str) -> None:
    engine = await open_store(db_url, "wl-a")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(orders), [_order("o1", "CONFIRMED", "40"), _order("o2", "CANCELLED", "30"),
                                                   _order("o3", "DENIED", "30"), _order("o4", "CONFIRMED", "10")])
            await conn.execute(sa.insert(checkouts), [_checkout("k1", "COMPLETED"), _checkout("k2", "PENDING"),
                                                      _checkout("k3", "CANCELLED")])
            await conn.execute(sa.insert(import_ledger).values(
                entry_id="e1", checkout_id="k1", order_id="x1", kind="IMPORT", exporter_wl="wl-b", quantity=2,
                currency="XPY-A", amount="5", source_currency="XPY-B", source_amount="10", fx_version=1,
                policy_version=1, buyer_reference="m", correlation_id="c", created_at=NOW))
        async with engine.connect() as conn:
            facts = await confirmed_facts(conn, "wl-a")
        guard = await _guard()
        guard.load(facts)
        # exports 40 + 10; imports (rate 0.5): finalized 10 → 5. The PENDING checkout is no fact: the checkout
        # service holds it as in flight (tests/wl_node/checkout/test_import_guard.py).
        assert guard.balance("wl-a", "wl-b").net == Decimal("45")
    finally:
        await engine.dispose()


async def test_the_desk_guard_resolves_reservations_from_the_transaction_outcome(db_url: str) -> None:
    engine = await open_store(db_url, "wl-a")
    clock = ManualClock(NOW)
    try:
        guard = await _guard()
        desk = DeskGuard(guard, clock, grace=dt.timedelta(seconds=30))

        def intent(cid: str, total: str) -> OrderIntent:
            return OrderIntent("wl-a", "wl-b", "o-1", 1, "XPY-A", Decimal(total), cid)

        assert desk(None, intent("c1", "40")) is None  # type: ignore[arg-type]  # committed CONFIRMED
        assert desk(None, intent("c2", "30")) is None  # type: ignore[arg-type]  # committed DENIED (stock)
        assert desk(None, intent("c3", "20")) is None  # type: ignore[arg-type]  # rolled back
        assert desk(None, intent("c4", "5")) is None  # type: ignore[arg-type]  # settled by the fast path
        with pytest.raises(FailedPrecondition) as info:
            desk(None, intent("c5", "6"))  # type: ignore[arg-type]  # 95 in flight + 6 > 100
        assert info.value.reason == "IMBALANCE_LIMIT"
        desk.settle_order("wl-b", "c4", "o-1", 1, "ord-4", confirmed=True)
        async with engine.begin() as conn:
            await conn.execute(sa.insert(orders), [_order("ord-1", "CONFIRMED", "40", cid="c1"),
                                                   _order("ord-2", "DENIED", "30", cid="c2")])
        async with engine.connect() as conn:
            assert await desk.resolve_pending(conn) == 0  # younger than look_up_after: left to the desk's settle
            clock.advance(1)
            assert await desk.resolve_pending(conn) == 2
            assert desk.in_flight == 1  # c3: no order yet, within the grace period
            clock.advance(30)
            assert await desk.resolve_pending(conn) == 1
        b = guard.balance("wl-a", "wl-b")
        assert (b.net, b.in_flight_up, desk.in_flight) == (Decimal("45"), 0, 0)
    finally:
        await engine.dispose()
