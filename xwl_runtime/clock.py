"""Injected time: UTC wall clock, monotonic clock and the waits of background loops behind one small interface,
replaceable in tests.

Loops wait through their clock (``sleep``, ``wait_any``), never through ``asyncio.sleep`` or a timeout of their own,
so a test drives them with ``ManualClock.advance`` instead of waiting in real time: a loop parked on
``clock.wait_any(stop, timeout=30)`` wakes when the test advances the clock 30 s (or sets the event), at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """What background loops and services read time from, and wait with."""

    def now(self) -> dt.datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time (at once when ``seconds`` <= 0)."""

    async def wait_any(self, *events: asyncio.Event, timeout: float | None = None) -> None:
        """Return when any of ``events`` is set, or after ``timeout`` seconds of this clock's time (None: never)."""


async def _first_done(waiters: list[asyncio.Future[object]], timeout: float | None) -> None:
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


class SystemClock:
    """The real clock; ``now`` is timezone-aware UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait_any(self, *events: asyncio.Event, timeout: float | None = None) -> None:
        if timeout is not None and timeout <= 0:
            await asyncio.sleep(0)  # a loop whose wait is already over still yields to the others
            return
        if not events:
            await (asyncio.sleep(timeout) if timeout is not None else asyncio.Event().wait())
            return
        await _first_done([asyncio.ensure_future(e.wait()) for e in events], timeout)


class ManualClock:
    """A clock tests move by hand: ``advance`` moves both clocks and wakes every wait whose time has come."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self._mono = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    @property
    def sleepers(self) -> int:
        """Waits parked on this clock (a test advances once the loop it drives is parked)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def advance(self, seconds: float) -> None:
        self._now += dt.timedelta(seconds=seconds)
        self._mono += seconds
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._order), future))
        await future

    async def wait_any(self, *events: asyncio.Event, timeout: float | None = None) -> None:
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(e.wait()) for e in events]
        if timeout is not None:
            waiters.append(asyncio.ensure_future(self.sleep(timeout)))
        if not waiters:
            await asyncio.Event().wait()
        await _first_done(waiters, None)
