"""The alert board: the latest ALERT / ALERT_CLEARED signal per pair of this WL, and its watchers.

The enforcer applies the CP's alert signals here (and acknowledges them, like every signal); each open
``WatchPairAlerts`` stream is a watcher with a bounded queue. A watcher that falls behind is dropped (its stream
ends with UNAVAILABLE and the app reconnects to get the current state), so a slow app never holds the enforcer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

from xporty.cp.v1 import signal_pb2

WATCHER_QUEUE = 64
"""Alert changes buffered per watcher before it is dropped."""


@dataclass(frozen=True)
class PairAlertState:
    """One pair's alert as this node last applied it."""

    wl_a: str
    wl_b: str
    open: bool
    reason: str
    correlation_id: str
    signal_id: str
    issue_time: dt.datetime
    effective_at: dt.datetime

    def peer_of(self, wl_id: str) -> str:
        return self.wl_b if self.wl_a == wl_id else self.wl_a

    @classmethod
    def from_signal(cls, signal: signal_pb2.Signal, effective: dt.datetime) -> PairAlertState:
        a, b = sorted((signal.exporter_wl, signal.importer_wl))
        return cls(wl_a=a, wl_b=b, open=signal.kind == signal_pb2.SIGNAL_KIND_ALERT, reason=signal.reason[:512],
                   correlation_id=signal.correlation_id, signal_id=signal.signal_id,
                   issue_time=signal.issue_time.ToDatetime(dt.UTC), effective_at=effective)


class WatcherDropped(Exception):
    """A watcher's queue overflowed; it must reconnect for the current state."""


class AlertBoard:
    """Current alert per pair and the queues of the streams watching them."""

    def __init__(self) -> None:
        self._alerts: dict[tuple[str, str], PairAlertState] = {}
        self._watchers: set[asyncio.Queue[PairAlertState | None]] = set()

    def open_alerts(self) -> list[PairAlertState]:
        return sorted((a for a in self._alerts.values() if a.open), key=lambda a: (a.wl_a, a.wl_b))

    def apply(self, state: PairAlertState) -> None:
        """Record the pair's new alert state and hand it to every watcher."""
        self._alerts[(state.wl_a, state.wl_b)] = state
        for queue in list(self._watchers):
            try:
                queue.put_nowait(state)
            except asyncio.QueueFull:
                self._watchers.discard(queue)
                queue.get_nowait()  # make room for the end marker
                queue.put_nowait(None)

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    async def watch(self) -> AsyncIterator[PairAlertState]:
        """Every open alert now, then each change; raises ``WatcherDropped`` if the watcher fell behind."""
        queue: asyncio.Queue[PairAlertState | None] = asyncio.Queue(WATCHER_QUEUE)
        self._watchers.add(queue)
        try:
            for state in self.open_alerts():
                yield state
            while True:
                item = await queue.get()
                if item is None:
                    raise WatcherDropped("alert watcher fell behind")
                yield item
        finally:
            self._watchers.discard(queue)
