"""Cross-replica wake-ups: LISTEN on a PostgreSQL channel and refresh a local reader on every NOTIFY.

One loop per (channel, reader) serves every CP consumer: the policy hub (payload = the new policy version), the
signal hub (payload = the new sequence) and the webhook outbox. A payload is only a hint: the reader re-reads
whatever committed since its last look, so lost or coalesced notifications cost latency, never correctness, and
after each (re)connection the reader refreshes once (hint None) to pick up what committed while the loop was away.
Idle, the loop waits on its connection and the stop event only: no timer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import psycopg
from psycopg import sql

from .backoff import Backoff
from .db import libpq_dsn

log = logging.getLogger(__name__)


class Refreshable(Protocol):
    """What a notification refreshes."""

    async def refresh(self, hint: str | None = None) -> None:
        """Re-read what committed since the last look; ``hint``: the latest notification's payload (None after a
        (re)connection)."""


class NotifyListener:
    """A background loop: ``await listener.run(stop)``; ``connected`` is set while LISTEN is active."""

    def __init__(self, db_url: str, channel: str, target: Refreshable, *, backoff: Backoff | None = None) -> None:
        self._dsn = libpq_dsn(db_url)
        self._channel = channel
        self._target = target
        self._backoff = backoff or Backoff(base_s=0.2, cap_s=3.0)
        self._hint: str | None = None
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._listen(stop)
            except (psycopg.Error, OSError) as err:
                self.connected.clear()
                delay = self._backoff.next_delay()
                log.warning("LISTEN connection lost; reconnecting",
                            extra={"fields": {"channel": self._channel, "error": str(err)[:200],
                                              "retry_s": round(delay, 3)}})
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass

    async def _listen(self, stop: asyncio.Event) -> None:
        conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._backoff.reset()
            self.connected.set()
            await self._target.refresh(None)
            # Notifications that arrive while a refresh runs coalesce into one more (with the latest payload).
            wake = asyncio.Event()
            tasks = [asyncio.create_task(self._receive(conn, wake), name=f"listen-{self._channel}"),
                     asyncio.create_task(self._refresh_on(wake), name=f"refresh-{self._channel}"),
                     asyncio.create_task(stop.wait(), name=f"listen-stop-{self._channel}")]
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

    async def _receive(self, conn: psycopg.AsyncConnection[Any], wake: asyncio.Event) -> None:
        async for notify in conn.notifies():
            self._hint = notify.payload
            wake.set()
        raise psycopg.OperationalError("the LISTEN connection stopped delivering notifications")

    async def _refresh_on(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            hint, self._hint = self._hint, None
            await self._target.refresh(hint)
