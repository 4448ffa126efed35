"""The one way a process built from components runs and stops: the CP, a node, and the partial nodes of tests and
benches.

``Lifecycle`` owns the server, the components' background loops and the order of shutdown:

1. **drain**: every component's ``on_drain`` hooks end what would hold the grace period open (stream hubs close,
   so open server-streaming calls finish instead of waiting for it);
2. **server and loops, side by side**: NOT_SERVING, new calls refused, calls in flight get ``grace`` seconds
   (``RunningServer.stop``); meanwhile the stop event is set and the loops get ``loop_timeout_s`` to return, then
   are cancelled (a loop is background work: nothing in flight waits for it);
3. **stop**: every component's ``on_stop`` hooks (flush a batch, close a runner's thread, close a worker pool,
   close channels), in component order: no call and no loop can use them any more;
4. **close**: the process's own resources (metrics listener, CP channel, the store's engine), in the order given.

Stopping twice is a no-op; a hook that fails is logged and the rest still run, so a store is never left open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from .component import BackgroundLoop, Component
from .server import RunningServer

log = logging.getLogger(__name__)

LOOP_STOP_TIMEOUT_S = 5.0
"""How long background loops get to return after the stop signal before they are cancelled."""

Closer = Callable[[], Awaitable[None]]


class Lifecycle:
    """A running server with its components' loops, stopped in one order (module docstring). Without a server
    (a bench's loops-only node) the second step is skipped."""

    def __init__(self, server: RunningServer | None, components: Sequence[Component], *,
                 closers: Sequence[Closer] = (), loop_timeout_s: float = LOOP_STOP_TIMEOUT_S) -> None:
        self.server = server
        self.components = list(components)
        self.stop_event = asyncio.Event()
        """Set when the process starts stopping: every background loop returns when it sees it."""
        self._closers = list(closers)
        self._loop_timeout_s = loop_timeout_s
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    @property
    def loop_tasks(self) -> frozenset[asyncio.Task[None]]:
        """The tasks of the loops started and not stopped yet."""
        return frozenset(self._tasks)

    @property
    def running_loops(self) -> int:
        """How many loops were started and not stopped yet."""
        return sum(1 for task in self._tasks if not task.done())

    def start_loops(self, loops: Sequence[BackgroundLoop] | None = None) -> None:
        """Start ``loops`` (default: every component's) as tasks that stop with the process."""
        chosen = [loop for c in self.components for loop in c.loops] if loops is None else list(loops)
        for loop in chosen:
            task = asyncio.create_task(loop(self.stop_event), name=getattr(loop, "__qualname__", "loop"))
            task.add_done_callback(_log_loop_end)
            self._tasks.append(task)

    def add_closer(self, closer: Closer) -> None:
        """Close ``closer`` last (after those given at construction)."""
        self._closers.append(closer)

    async def stop(self, grace: float) -> None:
        """Drain, stop the server (``grace`` seconds for calls in flight), stop loops, run stop hooks, close."""
        if self._stopped:
            return
        self._stopped = True
        await _run_all("drain", [h for c in self.components for h in c.on_drain])
        self.stop_event.set()
        await asyncio.gather(self._stop_server(grace), self.stop_loops())
        await _run_all("stop", [h for c in self.components for h in c.on_stop])
        await _run_all("close", self._closers)

    async def _stop_server(self, grace: float) -> None:
        if self.server is not None:
            await self.server.stop(grace)

    async def stop_loops(self) -> None:
        """Set the stop event and wait for the loops (cancelled after the timeout). Outside ``stop`` the server
        keeps serving, and loops started afterwards run under a fresh stop event."""
        self.stop_event.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._loop_timeout_s)
            for task in pending:
                log.warning("background loop did not stop in time; cancelled",
                            extra={"fields": {"loop": task.get_name()}})
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not self._stopped:
            self.stop_event = asyncio.Event()


async def _run_all(stage: str, hooks: Sequence[Closer]) -> None:
    for hook in hooks:
        try:
            await hook()
        except Exception:  # noqa: BLE001 - one failing hook must not leave the rest (and the store) open
            log.exception("shutdown hook failed", extra={"fields": {"stage": stage,
                                                                    "hook": getattr(hook, "__qualname__", "?")}})


def _log_loop_end(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    err = task.exception()
    if err is not None:
        log.error("background loop crashed", exc_info=err, extra={"fields": {"loop": task.get_name()}})
