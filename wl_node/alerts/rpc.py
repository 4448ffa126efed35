"""``StorefrontService/WatchPairAlerts``: the alert board as a server stream for this WL's apps and operators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from xporty.node.v1 import storefront_service_pb2 as pb
from xwl_runtime.errors import Unavailable

from .board import AlertBoard, PairAlertState, WatcherDropped

SERVICE = "xporty.node.v1.StorefrontService"


def to_proto(state: PairAlertState, wl_id: str) -> pb.PairAlert:
    alert = pb.PairAlert(peer_wl=state.peer_of(wl_id), open=state.open, reason=state.reason,
                         correlation_id=state.correlation_id, signal_id=state.signal_id)
    alert.issue_time.FromDatetime(state.issue_time)
    alert.effective_time.FromDatetime(state.effective_at)
    return alert


class PairAlertsRpc:
    """The stream handler; the storefront servicer delegates to it."""

    def __init__(self, board: AlertBoard, wl_id: str) -> None:
        self._board = board
        self._wl_id = wl_id

    async def WatchPairAlerts(  # noqa: N802 - gRPC method name
        self, request: pb.WatchPairAlertsRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.WatchPairAlertsResponse]:
        try:
            async for state in self._board.watch():
                yield pb.WatchPairAlertsResponse(alert=to_proto(state, self._wl_id))
        except WatcherDropped:
            raise Unavailable("alert stream fell behind; reconnect", reason="WATCHER_DROPPED") from None
