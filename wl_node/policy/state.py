"""The policy view a node currently serves, shared by every component of the node.

The policy agent is the only writer (``apply``); readers call ``current()`` on every decision (no copies kept),
and components that must react at once to a change (catalog hiding, enforcer) register a listener.
Applying the same version twice changes nothing and does not notify.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from xporty.cp.v1 import policy_pb2, registry_pb2
from xwl_runtime.clock import Clock

log = logging.getLogger(__name__)

Listener = Callable[[policy_pb2.PolicyView], Awaitable[None]]


class PolicyState:
    """Current view, its version, when the CP last confirmed it, and change listeners."""

    def __init__(self, wl_id: str, clock: Clock, max_staleness: dt.timedelta) -> None:
        self.wl_id = wl_id
        self._clock = clock
        self._max_staleness = max_staleness
        self._view: policy_pb2.PolicyView | None = None
        self._confirmed_at: dt.datetime | None = None
        self._listeners: list[Listener] = []
        self.stream_connected = False

    # --- reading -------------------------------------------------------------------------------------------
    def current(self) -> policy_pb2.PolicyView | None:
        return self._view

    @property
    def version(self) -> int:
        return self._view.version if self._view is not None else 0

    @property
    def confirmed_at(self) -> dt.datetime | None:
        return self._confirmed_at

    def is_stale(self) -> bool:
        """True with no view, or when the CP last confirmed it longer ago than the allowed staleness."""
        if self._view is None or self._confirmed_at is None:
            return True
        return self._clock.now() - self._confirmed_at > self._max_staleness

    def pair(self, other_wl: str) -> policy_pb2.PairPolicy | None:
        """The policy of the pair {this WL, other_wl}."""
        view = self._view
        if view is None:
            return None
        a, b = sorted((self.wl_id, other_wl))
        for pair in view.pairs:
            if pair.wl_a == a and pair.wl_b == b:
                return pair
        return None

    def direction(self, exporter_wl: str, importer_wl: str) -> policy_pb2.DirectionPolicy | None:
        other = importer_wl if exporter_wl == self.wl_id else exporter_wl
        pair = self.pair(other)
        if pair is None:
            return None
        for d in pair.directions:
            if d.exporter_wl == exporter_wl and d.importer_wl == importer_wl:
                return d
        return None

    def white_label(self, wl_id: str) -> registry_pb2.WhiteLabel | None:
        view = self._view
        if view is None:
            return None
        for wl in view.white_labels:
            if wl.wl_id == wl_id:
                return wl
        return None

    # --- writing (policy agent only) -----------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def confirm(self, version: int) -> None:
        """The CP says ``version`` is still current (heartbeat or not-modified pull)."""
        if self._view is not None and version == self._view.version:
            self._confirmed_at = self._clock.now()

    async def apply(self, view: policy_pb2.PolicyView, *, confirmed_at: dt.datetime | None = None) -> bool:
        """Serve ``view``; returns False (and changes nothing) if it is not newer than the current one.

        ``confirmed_at`` is when the CP last confirmed the view: now for a view just received, the persisted time
        for a last-known-good view loaded from disk at start-up.
        """
        when = confirmed_at or self._clock.now()
        if self._view is not None and view.version == self._view.version:
            self._confirmed_at = max(when, self._confirmed_at or when)
        if self._view is not None and view.version <= self._view.version:
            return False
        self._view = view
        self._confirmed_at = when
        for listener in list(self._listeners):
            await listener(view)
        return True
