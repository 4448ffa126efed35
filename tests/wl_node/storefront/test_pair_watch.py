"""WatchPairs: a WL service follows its pairs' policies and the signals its node applies, over the real stack."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.support.databases import sqlite_url
from tests.support.pki import PkiFixture
from wl_node.policy.state import PolicyState
from wl_node.storefront import pair_watch
from wl_node.storefront.pair_watch import PairWatch
from xporty.cp.v1 import admin_service_pb2, policy_pb2, signal_pb2, signal_service_pb2
from xporty.node.v1 import storefront_pb2, storefront_service_pb2, storefront_service_pb2_grpc
from xwl_runtime.clock import SystemClock
from xwl_runtime.errors import Aborted, decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

WL_A = Identity.wl("wl-a")


@pytest.fixture
async def sqlite_stack(pki: PkiFixture, tmp_path: Path) -> AsyncIterator[Stack]:
    """A real CP with wl-a and wl-b paired, and node wl-a following it (the stream does not depend on the store)."""
    async with running_stack(pki, sqlite_url(tmp_path, "cp"), tmp_path) as running:
        yield running


async def _next(stream: grpc.aio.UnaryStreamCall, timeout: float = 10) -> storefront_service_pb2.WatchPairsResponse:
    event = await asyncio.wait_for(stream.read(), timeout)
    assert event is not grpc.aio.EOF
    return event


async def test_an_app_sees_the_current_pairs_then_a_policy_change_then_a_signal(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    async with secure_channel(stack.node_target, stack.pki.material(Identity.app("wl-a", "shop")),
                              expected=WL_A) as channel:
        stream = storefront_service_pb2_grpc.StorefrontServiceStub(channel).WatchPairs(
            storefront_service_pb2.WatchPairsRequest(), timeout=30)
        first = await _next(stream)
        assert first.WhichOneof("event") == "pairs"
        assert first.pairs.policy_version == stack.node.state.version
        assert [(p.wl_a, p.wl_b, p.fx_rate) for p in first.pairs.pairs] == [("wl-a", "wl-b", "2")]

        async with stack.ops_client() as ops:
            await ops.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
                wl_a="wl-a", wl_b="wl-b", status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, fx_rate="2.1",
                imbalance_limit="1000", reason="watch test"))
            changed = await _next(stream)
            while changed.WhichOneof("event") != "pairs" or changed.pairs.pairs[0].fx_rate != "2.1":
                changed = await _next(stream)
            assert changed.pairs.policy_version > first.pairs.policy_version

            sent = await ops.send_signal(signal_service_pb2.SendSignalRequest(
                kind=signal_pb2.SIGNAL_KIND_DISABLE, exporter_wl="wl-b", importer_wl="wl-a", reason="watch test"))
            event = await _next(stream)
            while event.WhichOneof("event") != "signal":
                event = await _next(stream)
        assert event.signal.kind == storefront_pb2.PAIR_SIGNAL_KIND_DIRECTION_DISABLED
        assert (event.signal.signal_id, event.signal.exporter_wl, event.signal.importer_wl) == (
            sent.signal_id, "wl-b", "wl-a")
        assert event.signal.reason == "watch test"
        stream.cancel()


async def test_an_app_of_another_wl_may_not_watch(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    async with secure_channel(stack.node_target, stack.pki.material(Identity.app("wl-b", "spy")),
                              expected=WL_A) as channel:
        stream = storefront_service_pb2_grpc.StorefrontServiceStub(channel).WatchPairs(
            storefront_service_pb2.WatchPairsRequest(), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.read()
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert decode_rpc_error(refused.value).reason == "NOT_THIS_WL"


class _NoSignals:
    def add_listener(self, listener: object) -> None:
        pass

    def add_pair_listener(self, listener: object) -> None:
        pass


async def test_a_subscriber_that_falls_behind_is_ended_with_subscriber_lagged(monkeypatch: pytest.MonkeyPatch
                                                                              ) -> None:
    monkeypatch.setattr(pair_watch, "QUEUE_SIZE", 2)
    state = PolicyState("wl-a", SystemClock(), dt.timedelta(minutes=5))
    watch = PairWatch(state, _NoSignals())
    stream = watch.stream()
    reader = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    assert watch.subscribers == 1
    for version in range(1, 5):
        await state.apply(policy_pb2.PolicyView(wl_id="wl-a", version=version))
    assert (await reader).pairs.policy_version == 1
    with pytest.raises(Aborted) as lagged:
        while True:
            await anext(stream)
    assert lagged.value.reason == "SUBSCRIBER_LAGGED"
    assert watch.subscribers == 0
