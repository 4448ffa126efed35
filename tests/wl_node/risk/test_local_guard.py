"""The local imbalance guard: exact reference values, synchronous refusal with details, concurrency, rebuild."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
from decimal import Decimal

import pytest

from wl_node.policy.state import PolicyState
from wl_node.risk.local_guard import LocalGuard
from xporty.cp.v1 import policy_pb2, registry_pb2
from xwl_runtime.clock import ManualClock
from xwl_runtime.errors import FailedPrecondition

LIMIT = Decimal("100")


async def _guard(limit: str = "100", rate_a: str = "1", rate_b: str = "0.5") -> LocalGuard:
    """A guard of node wl-a whose pair with wl-b has ``limit``; one XPY-B is worth ``rate_b`` reference units."""
    state = PolicyState("wl-a", ManualClock(), dt.timedelta(minutes=10))
    await state.apply(policy_pb2.PolicyView(
        wl_id="wl-a", version=1,
        white_labels=[registry_pb2.WhiteLabel(wl_id="wl-a", currency="XPY-A", reference_rate=rate_a),
                      registry_pb2.WhiteLabel(wl_id="wl-b", currency="XPY-B", reference_rate=rate_b)],
        pairs=[policy_pb2.PairPolicy(wl_a="wl-a", wl_b="wl-b", status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE,
                                     imbalance_limit=limit, fx_rate="2", fx_version=1)],
    ))
    guard = LocalGuard(state)
    guard.load([])
    return guard


async def test_refuses_the_order_that_would_pass_the_limit_with_balance_limit_and_headroom() -> None:
    guard = await _guard()
    guard.reserve("wl-a", "wl-b", Decimal("60")).confirm()
    guard.reserve("wl-a", "wl-b", Decimal("30")).confirm()
    with pytest.raises(FailedPrecondition) as info:
        guard.reserve("wl-a", "wl-b", Decimal("10.01"))
    err = info.value
    assert err.reason == "IMBALANCE_LIMIT"
    assert err.metadata["balance"] == "90" and err.metadata["limit"] == "100" and err.metadata["headroom"] == "10"
    assert err.metadata["order_value"] == "10.01"
    guard.reserve("wl-a", "wl-b", Decimal("10")).confirm()  # exactly at the limit is allowed
    assert guard.balance("wl-a", "wl-b").net == LIMIT

    # Seen from the other side: wl-b's exports move the balance back, valued at wl-b's reference rate (0.5).
    assert guard.balance("wl-b", "wl-a").net == -LIMIT
    guard.reserve("wl-b", "wl-a", Decimal("300")).confirm()  # 150 back: net −50 from wl-a's side
    assert guard.balance("wl-a", "wl-b").net == Decimal("-50")
    with pytest.raises(FailedPrecondition) as info:
        guard.reserve("wl-b", "wl-a", Decimal("100.02"))  # 50.01 more would make wl-b's surplus 100.01
    assert info.value.metadata["balance"] == "50" and info.value.metadata["headroom"] == "50"


async def test_in_flight_orders_count_and_released_ones_free_the_headroom() -> None:
    guard = await _guard()
    held = guard.reserve("wl-a", "wl-b", Decimal("70"))
    with pytest.raises(FailedPrecondition):
        guard.reserve("wl-a", "wl-b", Decimal("40"))  # 70 in flight + 40 > 100
    held.release()
    guard.reserve("wl-a", "wl-b", Decimal("40")).confirm()
    held.confirm()  # a closed reservation stays closed
    assert guard.balance("wl-a", "wl-b").net == Decimal("40")
    with guard.reserve("wl-a", "wl-b", Decimal("60")) as r:  # a block that ends without confirm releases
        assert r.open
    assert guard.balance("wl-a", "wl-b").in_flight_up == 0
    guard.record_reversal("wl-a", "wl-b", Decimal("40"))  # cancelled order
    assert guard.balance("wl-a", "wl-b").net == 0


async def test_refused_until_rebuilt_and_rebuilt_from_ledger_facts() -> None:
    guard = await _guard()
    guard.ready = False
    with pytest.raises(FailedPrecondition) as info:
        guard.reserve("wl-a", "wl-b", Decimal("1"))
    assert info.value.reason == "RISK_GUARD_STARTING"
    guard.load([("wl-a", "wl-b", Decimal("80")), ("wl-b", "wl-a", Decimal("20")), ("wl-a", "wl-b", Decimal("5"))])
    assert guard.balance("wl-a", "wl-b").net == Decimal("75")  # 80 + 5 − 20 × 0.5
    with pytest.raises(FailedPrecondition):
        guard.reserve("wl-a", "wl-b", Decimal("25.5"))


@pytest.mark.parametrize("confirm_share", [1.0, 0.7])
async def test_100_concurrent_reservations_never_take_the_pair_past_its_limit(confirm_share: float) -> None:
    """Coroutines and worker threads (the order desk's guard runs in one) reserve at once; some orders confirm,
    some are denied later. Confirmed + in flight never passes the limit, and the confirmed net ends ≤ limit."""
    guard = await _guard()
    order = Decimal("7")
    rng = random.Random(5)
    outcomes = [rng.random() < confirm_share for _ in range(100)]
    confirmed = admitted = refused = 0
    watch_lock = threading.Lock()
    worst = [Decimal(0)]

    def observe() -> None:
        b = guard.balance("wl-a", "wl-b")
        with watch_lock:
            worst[0] = max(worst[0], b.net + b.in_flight_up)

    async def one(i: int) -> None:
        nonlocal confirmed, admitted, refused
        await asyncio.sleep(rng.random() / 100)
        try:
            if i % 2:
                r = await asyncio.to_thread(guard.reserve, "wl-a", "wl-b", order)
            else:
                r = guard.reserve("wl-a", "wl-b", order)
        except FailedPrecondition as err:
            assert err.reason == "IMBALANCE_LIMIT"
            refused += 1
            return
        admitted += 1
        observe()
        await asyncio.sleep(rng.random() / 50)  # the remote call / the rest of the transaction
        if outcomes[i]:
            r.confirm()
            confirmed += 1
        else:
            r.release()
        observe()

    await asyncio.gather(*(one(i) for i in range(100)))
    final = guard.balance("wl-a", "wl-b")
    assert final.in_flight_up == 0
    assert final.net == order * confirmed
    assert final.net <= LIMIT and worst[0] <= LIMIT
    assert refused > 0 and admitted + refused == 100
    if confirm_share == 1.0:
        assert confirmed == 14  # floor(100 / 7): every order that fits, none more
