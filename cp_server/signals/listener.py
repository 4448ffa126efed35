"""Cross-replica fan-out: LISTEN on a channel and refresh a local reader on every NOTIFY (the signal hub on the
signal channel; the webhook outbox on its channel).

Runs only on PostgreSQL. The payload (the new sequence) is only a hint: the hub reloads everything after its last
published sequence, so lost or coalesced notifications cost nothing but latency, and after each (re)connection the
hub refreshes once to pick up what committed while the listener was away.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import psycopg

from xwl_runtime.backoff import Backoff
from xwl_runtime.db import libpq_dsn

log = logging.getLogger(__name__)

class Refreshable(Protocol):
    """What a notification refreshes: it re-reads whatever committed since its last look."""

    async def refresh(self) -> None: ...


class SignalListener:
    """A background loop: ``await listener.run(stop)``."""

    def __init__(self, db_url: str, channel: str, hub: Refreshable, *, backoff: Backoff | None = None) -> None:
        self._dsn = libpq_dsn(db_url)
        self._channel = channel
        self._hub = hub
        self._backoff = backoff or Backoff(base_s=0.2, cap_s=3.0)
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._listen(stop)
            except (psycopg.Error, OSError) as err:
                self.connected.clear()
                delay = self._backoff.next_delay()
                log.warning("signal listener lost its connection",
                            extra={"fields": {"error": str(err), "retry_s": round(delay, 3)}})
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass

    async def _listen(self, stop: asyncio.Event) -> None:
        conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        try:
            await conn.execute(f'LISTEN "{self._channel}"')
            self._backoff.reset()
            self.connected.set()
            await self._hub.refresh()
            # Idle, this waits on the connection and the stop event only: no timer. Notifications that arrive
            # while a refresh runs coalesce into one more refresh (each reads everything committed since the last).
            wake = asyncio.Event()
            tasks = [asyncio.create_task(self._receive(conn, wake), name="listener-receive"),
                     asyncio.create_task(self._refresh_on(wake), name="listener-refresh"),
                     asyncio.create_task(stop.wait(), name="listener-stop")]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                task.result()  # a lost connection (psycopg.Error) or a failed refresh ends this session
        finally:
            self.connected.clear()
            await conn.close()

    @staticmethod
    async def _receive(conn: psycopg.AsyncConnection[Any], wake: asyncio.Event) -> None:
        async for _notify in conn.notifies():
            wake.set()
        raise psycopg.OperationalError("the LISTEN connection stopped delivering notifications")

    async def _refresh_on(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            await self._hub.refresh()
