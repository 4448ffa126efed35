"""WatchPairs: the local API's stream of this WL's pair policies and of the signals the node applied.

The node already reacts to both (the policy agent applies views to ``PolicyState``; the enforcer applies CP
signals); this module only fans those changes out to the WL's own services. Each subscriber has a bounded queue:
a subscriber that does not keep up is ended with ABORTED ``SUBSCRIBER_LAGGED`` rather than buffering without limit
or slowing the node's own listeners, and it resubscribes to get the current view first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Protocol

from google.protobuf import timestamp_pb2

from xporty.cp.v1 import policy_pb2
from xporty.node.v1 import storefront_pb2
from xporty.node.v1 import storefront_service_pb2 as pb
from xwl_runtime.errors import Aborted

from ..policy.state import PolicyState
from ..risk.enforcer import DirectionListener, DirectionState, PairListener
from ..risk.pair_status import PairStatusState

QUEUE_SIZE = 64
"""Events a subscriber may have pending before it is ended as lagged."""
_STATUS = {"ACTIVE": policy_pb2.RELATIONSHIP_STATUS_ACTIVE, "PAUSED": policy_pb2.RELATIONSHIP_STATUS_PAUSED,
           "BLOCKED": policy_pb2.RELATIONSHIP_STATUS_BLOCKED}


class _Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[pb.WatchPairsResponse] = asyncio.Queue(QUEUE_SIZE)
        self.lagged = False

    def offer(self, event: pb.WatchPairsResponse) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True


def _timestamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


class AppliedSignals(Protocol):
    """Where applied signals come from (``wl_node.risk.enforcer.Enforcer``)."""

    def add_listener(self, listener: DirectionListener) -> None: ...
    def add_pair_listener(self, listener: PairListener) -> None: ...


class PairWatch:
    """Fan-out of pair policy versions and applied signals to WatchPairs subscribers."""

    def __init__(self, state: PolicyState, enforcer: AppliedSignals) -> None:
        self._state = state
        self._subscribers: set[_Subscriber] = set()
        state.add_listener(self._on_view)
        enforcer.add_listener(self._on_direction)  # the signals the enforcer applies go out too
        enforcer.add_pair_listener(self._on_pair)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _pairs(self, view: policy_pb2.PolicyView) -> pb.WatchPairsResponse:
        own = [p for p in view.pairs if self._state.wl_id in (p.wl_a, p.wl_b)]
        return pb.WatchPairsResponse(pairs=storefront_pb2.PairsUpdate(policy_version=view.version, pairs=own))

    def _publish(self, event: pb.WatchPairsResponse) -> None:
        for subscriber in list(self._subscribers):
            subscriber.offer(event)

    async def _on_view(self, view: policy_pb2.PolicyView) -> None:
        self._publish(self._pairs(view))

    def _on_direction(self, state: DirectionState) -> None:
        kind = (storefront_pb2.PAIR_SIGNAL_KIND_DIRECTION_DISABLED if state.disabled
                else storefront_pb2.PAIR_SIGNAL_KIND_DIRECTION_ENABLED)
        self._publish(pb.WatchPairsResponse(signal=storefront_pb2.PairSignal(
            kind=kind, signal_id=state.signal_id, sequence=state.sequence, exporter_wl=state.exporter_wl,
            importer_wl=state.importer_wl, reason=state.reason, correlation_id=state.correlation_id,
            effective_time=_timestamp(state.effective_at))))

    def _on_pair(self, state: PairStatusState) -> None:
        self._publish(pb.WatchPairsResponse(signal=storefront_pb2.PairSignal(
            kind=storefront_pb2.PAIR_SIGNAL_KIND_PAIR_STATUS, signal_id=state.signal_id, sequence=state.sequence,
            exporter_wl=state.wl_a, importer_wl=state.wl_b,
            status=_STATUS.get(state.status, policy_pb2.RELATIONSHIP_STATUS_UNSPECIFIED), reason=state.reason,
            correlation_id=state.correlation_id, effective_time=_timestamp(state.effective_at))))

    async def stream(self) -> AsyncIterator[pb.WatchPairsResponse]:
        """The current pairs (when the node has a view), then every change until the caller goes away."""
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        try:
            view = self._state.current()
            if view is not None:
                yield self._pairs(view)
            while True:
                # A lagging subscriber's queue is full, so get() never waits for it: the check comes in time.
                if subscriber.lagged:
                    raise Aborted("pairs stream fell behind; subscribe again", reason="SUBSCRIBER_LAGGED")
                yield await subscriber.queue.get()
        finally:
            self._subscribers.discard(subscriber)
