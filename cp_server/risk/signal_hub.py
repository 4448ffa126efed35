"""In-process fan-out of committed signals to the open WatchSignals streams (separate from the policy hub).

The hub publishes strictly in sequence order and never skips a number: when it is handed signals that do not
follow the last one it published (another replica committed in between), it first loads the gap from the store.
The same ``refresh()`` serves the PostgreSQL NOTIFY listener. Each subscriber has a bounded queue; one that falls
behind is cut off (its stream ends with ABORTED) and resumes with ``after_sequence``, so a slow node never blocks
the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from .signal_store import SignalRecord

log = logging.getLogger(__name__)

LoadAfter = Callable[[int], Awaitable[list[SignalRecord]]]


class Subscription:
    """One stream's queue; ``None`` in the queue means the hub closed."""

    def __init__(self, hub: SignalHub, predicate: Callable[[SignalRecord], bool], maxsize: int) -> None:
        self._hub = hub
        self.predicate = predicate
        self.queue: asyncio.Queue[SignalRecord | None] = asyncio.Queue()
        self._maxsize = maxsize
        self.lagged = False

    def offer(self, record: SignalRecord) -> None:
        if self.lagged or not self.predicate(record):
            return
        if self.queue.qsize() >= self._maxsize:
            self.lagged = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(record)

    def close(self) -> None:
        self._hub.unsubscribe(self)


class SignalHub:
    """Fan-out of signals in sequence order to subscribers in this process."""

    def __init__(self, load_after: LoadAfter, *, queue_size: int = 1024) -> None:
        self._load_after = load_after
        self._queue_size = queue_size
        self._subs: set[Subscription] = set()
        self._lock = asyncio.Lock()
        self._closed = False
        self.last_sequence = 0

    async def start(self, last_sequence: int) -> None:
        """Begin after ``last_sequence`` (the store's current value at start-up)."""
        self.last_sequence = last_sequence

    def subscribe(self, predicate: Callable[[SignalRecord], bool]) -> Subscription:
        sub = Subscription(self, predicate, self._queue_size)
        if self._closed:
            sub.queue.put_nowait(None)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    async def publish(self, records: Sequence[SignalRecord]) -> None:
        """Publish signals that just committed in this process (fast path, no database read when contiguous)."""
        if not records:
            return
        async with self._lock:
            ordered = sorted(records, key=lambda r: r.sequence)
            if ordered[0].sequence != self.last_sequence + 1:
                ordered = await self._load_after(self.last_sequence)
            self._deliver(ordered)

    async def refresh(self, hint: str | None = None) -> None:
        """Load and publish everything committed after the last published sequence (NOTIFY, reconnects)."""
        async with self._lock:
            self._deliver(await self._load_after(self.last_sequence))

    def _deliver(self, records: Sequence[SignalRecord]) -> None:
        for record in records:
            if record.sequence <= self.last_sequence:
                continue
            self.last_sequence = record.sequence
            for sub in list(self._subs):
                sub.offer(record)

    def close(self) -> None:
        """End every stream (graceful stop): each subscriber gets the end marker."""
        self._closed = True
        for sub in list(self._subs):
            sub.queue.put_nowait(None)
