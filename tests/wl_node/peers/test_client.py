"""Trader client: explicit deadlines from the caller's time, retries only on transient codes with the same key."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from tests.support.pki import PkiFixture
from tests.wl_node.orders.harness import Exporter, place_request, policy_view, start_exporter, token
from wl_node.orders.tables import orders
from wl_node.peers.client import PeerConfig, PeerError, PeerUnavailable, TraderPeers
from wl_node.peers.tokens import TokenCache
from wl_node.policy.state import PolicyState
from xwl_runtime.clock import SystemClock
from xwl_runtime.identity import Identity


class Recorder(grpc.aio.ServerInterceptor):
    """Records the deadline each PlaceOrder arrived with; can refuse the first N with UNAVAILABLE."""

    def __init__(self) -> None:
        self.remaining: list[float] = []
        self.fail_first = 0
        self.fail_after_s = 0.0

    async def intercept_service(self, continuation, details):  # noqa: ANN001, ANN201
        handler = await continuation(details)
        if handler is None or not details.method.endswith("/PlaceOrder"):
            return handler
        inner = handler.unary_unary

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.remaining.append(context.time_remaining())
            if self.fail_first > 0:
                self.fail_first -= 1
                await asyncio.sleep(self.fail_after_s)  # a slow failure: it uses up part of the caller's deadline
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected")
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(wrapped, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


class _NoCp:
    def lease(self) -> Any:
        raise AssertionError("the trader client never calls the CP")

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


@pytest.fixture
async def setup(pki: PkiFixture, sqlite_db_url: str) -> AsyncIterator[tuple[Exporter, TraderPeers, Recorder]]:
    recorder = Recorder()
    exporter = await start_exporter(pki, sqlite_db_url, interceptors=[recorder])
    await exporter.add_offer("o1", stock=10)
    clock = SystemClock()
    state = PolicyState("wl-b", clock, dt.timedelta(minutes=10))
    await state.apply(policy_view("wl-b", 1, ["wl-a"], endpoints={"wl-a": exporter.target}))
    tokens = TokenCache(_NoCp(), clock)
    now = clock.now()
    tokens.put("wl-a", token("wl-b"), now, now + dt.timedelta(minutes=5))
    peers = TraderPeers(state, pki.material(Identity.wl("wl-b")), tokens, identity=Identity.wl("wl-b"),
                        config=PeerConfig(order_timeout_s=0.3))
    try:
        yield exporter, peers, recorder
    finally:
        await peers.close()
        await exporter.stop()


async def test_deadline_is_the_configured_timeout_cut_to_the_callers_remaining_time(
    setup: tuple[Exporter, TraderPeers, Recorder],
) -> None:
    _, peers, recorder = setup
    await peers.place_order("wl-a", place_request("a"), peers.deadline(None))
    await peers.place_order("wl-a", place_request("b"), peers.deadline(caller_remaining_s=0.1))
    assert 0.2 < recorder.remaining[0] <= 0.3
    assert 0.0 < recorder.remaining[1] <= 0.1


async def test_unavailable_is_retried_with_the_same_key_and_makes_one_order(
    setup: tuple[Exporter, TraderPeers, Recorder],
) -> None:
    exporter, peers, recorder = setup
    recorder.fail_first = 2
    recorder.fail_after_s = 0.03
    order = await peers.place_order("wl-a", place_request("retry"), peers.deadline(None))
    assert len(recorder.remaining) == 3
    # Each attempt gets what is left of the same deadline: the two slow failures (2 × 30 ms) are gone from it.
    # (A fresh deadline per attempt would give the third about what the first got; 10 ms absorbs timing noise.)
    assert recorder.remaining[2] < recorder.remaining[0] - 0.05
    assert order.idempotency_key == "retry"
    assert await exporter.count(orders) == 1


async def test_definite_refusals_are_not_retried(setup: tuple[Exporter, TraderPeers, Recorder]) -> None:
    _, peers, recorder = setup
    with pytest.raises(PeerError) as err:
        await peers.place_order("wl-a", place_request("stale", price="9.99"), peers.deadline(None))
    assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION and err.value.exporter_wl == "wl-a"
    assert err.value.reason  # the exporter's ErrorInfo reason, decoded by the client
    assert len(recorder.remaining) == 1
    assert peers.available("wl-a")  # a business refusal is not a transport failure


async def test_order_slots_bound_orders_in_flight_and_waiting_sends_nothing(pki: PkiFixture) -> None:
    clock = SystemClock()
    state = PolicyState("wl-b", clock, dt.timedelta(minutes=10))
    await state.apply(policy_view("wl-b", 1, ["wl-a"]))
    peers = TraderPeers(state, pki.material(Identity.wl("wl-b")), TokenCache(_NoCp(), clock),
                        identity=Identity.wl("wl-b"), config=PeerConfig(max_orders_in_flight=1))
    try:
        async with peers.order_slot("wl-a"):
            with pytest.raises(PeerUnavailable) as busy:
                async with peers.order_slot("wl-a", wait_s=0.05):
                    raise AssertionError("a second slot while the only one is held")
            assert (busy.value.reason, busy.value.sent) == ("EXPORTER_BUSY", False)
            async with peers.order_slot("wl-b-other"):  # slots are per exporter
                pass
            waiter = asyncio.ensure_future(_enter(peers.order_slot("wl-a", wait_s=5)))
            await asyncio.sleep(0.01)
            assert not waiter.done()  # queued behind the holder
        await asyncio.wait_for(waiter, 1)  # released: the waiter gets the slot
    finally:
        await peers.close()


async def _enter(slot: Any) -> None:
    async with slot:
        pass


async def test_the_order_channel_is_made_by_the_first_order_and_drops_its_connection_when_idle(
    pki: PkiFixture, sqlite_db_url: str,
) -> None:
    exporter = await start_exporter(pki, sqlite_db_url)
    await exporter.add_offer("o1", stock=10)
    clock = SystemClock()
    state = PolicyState("wl-b", clock, dt.timedelta(minutes=10))
    await state.apply(policy_view("wl-b", 1, ["wl-a"], endpoints={"wl-a": exporter.target}))
    tokens = TokenCache(_NoCp(), clock)
    now = clock.now()
    tokens.put("wl-a", token("wl-b"), now, now + dt.timedelta(minutes=5))
    peers = TraderPeers(state, pki.material(Identity.wl("wl-b")), tokens, identity=Identity.wl("wl-b"),
                        config=PeerConfig(order_timeout_s=2.0, channel_idle_s=1.0))
    try:
        peers.ensure_callable("wl-a")  # callable (token, closed circuit) without any channel yet
        assert peers.channel_state("wl-a") is None
        await peers.place_order("wl-a", place_request("first"), peers.deadline(None))
        assert peers.channel_state("wl-a") is grpc.ChannelConnectivity.READY

        started = asyncio.get_running_loop().time()
        for _ in range(100):  # no order for channel_idle_s: the connection is dropped (within 10 s)
            if peers.channel_state("wl-a") is grpc.ChannelConnectivity.IDLE:
                break
            await asyncio.sleep(0.1)
        assert peers.channel_state("wl-a") is grpc.ChannelConnectivity.IDLE
        assert asyncio.get_running_loop().time() - started >= 0.5

        order = await peers.place_order("wl-a", place_request("second"), peers.deadline(None))  # reconnects
        assert order.idempotency_key == "second"
        assert peers.channel_state("wl-a") is grpc.ChannelConnectivity.READY
        assert await exporter.count(orders) == 2
    finally:
        await peers.close()
        await exporter.stop()
