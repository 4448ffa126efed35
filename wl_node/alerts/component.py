"""The alerts feature of a node: the board fed by the enforcer, the stream on the local API, the metric."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from wl_node.context import NodeContext
from wl_node.risk.enforcer import Enforcer
from xporty.cp.v1 import signal_pb2
from xwl_runtime.component import Component

from .board import AlertBoard, PairAlertState
from .rpc import PairAlertsRpc


@dataclass
class Alerts:
    """What ``install`` built: the component (authorization), the board and the stream handler."""

    component: Component
    board: AlertBoard
    rpc: PairAlertsRpc


def install(ctx: NodeContext, enforcer: Enforcer, wl_id: str) -> Alerts:
    board = AlertBoard()

    def on_alert(signal: signal_pb2.Signal, effective: dt.datetime) -> None:
        state = PairAlertState.from_signal(signal, effective)
        board.apply(state)
        ctx.metrics.pair_alerts.labels(state.peer_of(wl_id)).set(1 if state.open else 0)

    enforcer.add_alert_listener(on_alert)
    return Alerts(component=Component(name="alerts"), board=board,
                  rpc=PairAlertsRpc(board, wl_id))
