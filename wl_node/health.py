"""The node's serving status: NOT_SERVING until it has a policy view, and whenever that view is stale.

``PolicyState.is_stale()`` is the single rule (no view, or last CP confirmation older than
``settings.policy_max_staleness``). The status is re-evaluated when the policy agent applies or confirms a view
and periodically, because staleness grows with time alone while the CP is away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from wl_node.policy.state import PolicyState
from xwl_runtime.clock import Clock, SystemClock

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 1.0
"""Period of the staleness re-evaluation loop."""

SetServing = Callable[[bool], Awaitable[None]]


class NodeHealth:
    """Drives the grpc.health.v1 status of every service of the node from the policy view's freshness."""

    def __init__(self, state: PolicyState, set_serving: SetServing, *, interval_s: float = HEALTH_INTERVAL_S,
                 clock: Clock | None = None) -> None:
        self._state = state
        self._set_serving = set_serving
        self._interval_s = interval_s
        self._clock = clock or SystemClock()
        self._serving: bool | None = None
        self._lock = asyncio.Lock()

    @property
    def serving(self) -> bool:
        """The status last published (False before the first evaluation)."""
        return bool(self._serving)

    async def evaluate(self) -> bool:
        """Publish SERVING or NOT_SERVING from the current view's freshness; returns the status."""
        async with self._lock:
            serving = not self._state.is_stale()
            if serving != self._serving:
                await self._set_serving(serving)
                log.log(
                    logging.INFO if serving else logging.WARNING,
                    "node health changed",
                    extra={"fields": {
                        "serving": serving,
                        "version": self._state.version,
                        "confirmed_at": self._state.confirmed_at.isoformat() if self._state.confirmed_at else "",
                    }},
                )
                self._serving = serving
            return serving

    async def run(self, stop: asyncio.Event) -> None:
        """Re-evaluate every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            await self.evaluate()
            await self._clock.wait_any(stop, timeout=self._interval_s)
