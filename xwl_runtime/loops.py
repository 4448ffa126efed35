"""The stream supervisor of the node's CP streams (policy views, signals).

Every loop takes the app's stop event and waits through its clock (``Clock.wait_any``): on events with a timeout,
never a bare sleep, so a manual clock drives it in tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .backoff import Backoff
from .clock import Clock


async def supervise_stream(
    session: Callable[[], Coroutine[Any, Any, None]],
    *,
    stop: asyncio.Event,
    rotated: asyncio.Event,
    backoff: Backoff,
    after_session: Callable[[asyncio.Task[None]], Awaitable[None]],
    name: str,
    clock: Clock,
) -> None:
    """Keep one long-lived stream open until ``stop`` is set (waits on ``clock``).

    Each ``session()`` runs until it ends or fails, ``stop`` is set, or ``rotated`` is set (the certificate was
    renewed: the stream must move to the new channel). Then ``after_session(task)`` runs with the ended task (to
    log how it ended and reset connection state), and the next session opens at once after a rotation, otherwise
    after the next backoff delay (cut short by ``stop`` or a rotation).
    """
    while not stop.is_set():
        rotated.clear()
        task = asyncio.create_task(session(), name=name)
        interrupt = asyncio.create_task(clock.wait_any(stop, rotated))
        try:
            await asyncio.wait({task, interrupt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for running in (task, interrupt):
                running.cancel()
            await asyncio.gather(task, interrupt, return_exceptions=True)
        await after_session(task)
        if stop.is_set():
            break
        if rotated.is_set():
            continue  # reopen at once on the rotated channel
        await clock.wait_any(stop, rotated, timeout=backoff.next_delay())
