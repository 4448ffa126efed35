"""The webhook outbox: deliveries queued in the transaction of the fact, sent by one loop with retries.

``enqueue`` runs inside the caller's transaction (a signal's, a discrepancy's), so an event is queued exactly when
its fact commits: one row per subscribed endpoint. ``run`` delivers due rows: a JSON POST signed with the
endpoint's secret (``signature``), 2xx = delivered; anything else (status, timeout, connection error) is retried
with exponential backoff and full jitter until ``max_attempts``, then the row is DEAD (the dead letter, listed by
``xcwl webhook list``). A row is claimed by a conditional update before it is sent, so CP replicas sharing the
database never send it twice at once.

The loop is driven by work, not by a timer: it sleeps until the earliest PENDING row falls due (a retry), or until
woken by a queueing transaction — on PostgreSQL that transaction sends ``pg_notify`` on ``notify_channel``, which
reaches every replica's listener at commit (``xwl_runtime.notify.NotifyListener``, the signal fan-out's
LISTEN loop); in this process ``enqueue`` also wakes the loop, which re-checks briefly until the rows it queued are
visible (committed) or their transaction is clearly gone. With nothing queued it runs no query at all but a
safety re-check every ``recheck_interval_s``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.metrics import CpMetrics
from cp_server.settings.webhooks import WebhookConfig
from xwl_runtime.clock import Clock

from . import signature
from .tables import deliveries, endpoints

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD = "PENDING", "DELIVERED", "DEAD"
FIRST_RECHECK_S = 0.05
"""After queueing in this process: the first look for the (then committed) rows; doubled while they stay unseen."""
EXPECT_FOR_S = 10.0
"""Rows queued here and still unseen after this long belong to a transaction that rolled back: stop looking."""


def backoff_s(attempts: int, config: WebhookConfig, rng: random.Random) -> float:
    """Delay after the ``attempts``-th failed attempt: full jitter over an exponential ceiling."""
    ceiling = min(config.max_backoff_s, config.base_backoff_s * 2 ** max(0, attempts - 1))
    return rng.uniform(ceiling / 2, ceiling)


class WebhookOutbox:
    """Queueing (in the caller's transaction) and delivery of webhook events."""

    def __init__(self, engine: AsyncEngine, clock: Clock, config: WebhookConfig | None = None,
                 metrics: CpMetrics | None = None, rng: random.Random | None = None) -> None:
        self._engine = engine
        self._clock = clock
        self.config = config or WebhookConfig()
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._expected: dict[str, float] = {}
        """Delivery ids queued in this process and not yet seen by a pass, with when they were queued."""
        self._notify = not engine.dialect.name.startswith("sqlite")

    async def enqueue(self, conn: AsyncConnection, event_type: str, data: dict[str, Any],
                      only: str | None = None) -> list[str]:
        """Queue ``event_type`` for every endpoint subscribed to it (or just ``only``); returns the delivery ids."""
        now = self._clock.now()
        query = sa.select(endpoints.c.webhook_id, endpoints.c.event_types)
        if only is not None:
            query = query.where(endpoints.c.webhook_id == only)
        targets = [r.webhook_id for r in (await conn.execute(query)).all()
                   if only is not None or not json.loads(r.event_types) or event_type in json.loads(r.event_types)]
        if not targets:
            return []
        event_id = "evt_" + uuid.uuid4().hex
        body = json.dumps({"id": event_id, "type": event_type, "created": now.isoformat(), "data": data},
                          separators=(",", ":"), sort_keys=True, default=str)
        ids = ["dlv_" + uuid.uuid4().hex for _ in targets]
        await conn.execute(deliveries.insert(), [
            {"delivery_id": d, "webhook_id": w, "event_type": event_type, "body": body, "state": PENDING,
             "attempts": 0, "next_attempt_at": now, "last_error": "", "created_at": now, "finished_at": None}
            for d, w in zip(ids, targets, strict=True)])
        if self._notify:  # sent at commit, to every replica's listener (this one's too)
            await conn.execute(sa.select(sa.func.pg_notify(self.config.notify_channel, "")))
        self.kick(ids)
        return ids

    def kick(self, expected: Sequence[str] = ()) -> None:
        """Look at the outbox now; ``expected``: delivery ids just queued, looked for until their commit shows."""
        queued = asyncio.get_running_loop().time()
        for delivery_id in expected:
            self._expected[delivery_id] = queued
        self._wake.set()

    async def refresh(self, hint: str | None = None) -> None:
        """A queueing transaction committed somewhere (the LISTEN loop's notification): look now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        recheck = FIRST_RECHECK_S
        while not stop.is_set():
            self._wake.clear()  # a kick during the pass makes the next pass start at once
            try:
                await self.deliver_due()
                delay = await self._until_due()
            except sa.exc.SQLAlchemyError:
                log.exception("webhook outbox pass failed; retrying")
                delay = min(self.config.recheck_interval_s, self.config.base_backoff_s * 2)
            if self._expected:
                delay, recheck = min(delay, recheck), min(recheck * 2, 1.0)
            else:
                recheck = FIRST_RECHECK_S
            await self._clock.wait_any(stop, self._wake, timeout=delay)

    async def _until_due(self) -> float:
        """Seconds until the earliest PENDING delivery falls due (capped by the safety re-check)."""
        async with self._engine.connect() as conn:
            due = (await conn.execute(sa.select(sa.func.min(deliveries.c.next_attempt_at))
                                      .where(deliveries.c.state == PENDING))).scalar()
        if due is None:
            return self.config.recheck_interval_s
        if isinstance(due, str):  # aggregate results skip the column type on SQLite
            due = dt.datetime.fromisoformat(due)
        if due.tzinfo is None:
            due = due.replace(tzinfo=dt.UTC)
        left: float = (due - self._clock.now()).total_seconds()
        return min(self.config.recheck_interval_s, max(0.0, left))

    async def deliver_due(self) -> int:
        """Send every due delivery once (concurrently); returns how many were attempted."""
        now = self._clock.now()
        async with self._engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(deliveries, endpoints.c.url, endpoints.c.secret)
                .join(endpoints, endpoints.c.webhook_id == deliveries.c.webhook_id)
                .where(deliveries.c.state == PENDING, deliveries.c.next_attempt_at <= now)
                .order_by(deliveries.c.next_attempt_at).limit(self.config.batch))).all()
        self._forget_expected(r.delivery_id for r in rows)
        claimed = [r for r in rows if await self._claim(r, now)]
        await asyncio.gather(*(self._attempt(r) for r in claimed))
        return len(claimed)

    def _forget_expected(self, seen: Iterable[str]) -> None:
        if not self._expected:
            return
        for delivery_id in seen:
            self._expected.pop(delivery_id, None)
        horizon = asyncio.get_running_loop().time() - EXPECT_FOR_S
        for delivery_id, queued in list(self._expected.items()):
            if queued < horizon:
                del self._expected[delivery_id]

    async def _claim(self, row: Any, now: dt.datetime) -> bool:
        lease = now + dt.timedelta(seconds=self.config.timeout_s * 2)
        async with self._engine.begin() as conn:
            result = await conn.execute(deliveries.update().where(
                deliveries.c.delivery_id == row.delivery_id, deliveries.c.state == PENDING,
                deliveries.c.attempts == row.attempts).values(next_attempt_at=lease))
        return bool(result.rowcount == 1)

    async def _attempt(self, row: Any) -> None:
        error = await asyncio.to_thread(self._post, row.url, row.body.encode(), row.secret, row.delivery_id,
                                        row.event_type)
        attempts = row.attempts + 1
        now = self._clock.now()
        if error is None:
            values: dict[str, Any] = {"state": DELIVERED, "finished_at": now, "last_error": ""}
            result = "delivered"
        elif attempts >= self.config.max_attempts:
            values = {"state": DEAD, "finished_at": now, "last_error": error[:256]}
            result = "dead"
            log.warning("webhook delivery dead-lettered", extra={"fields": {
                "delivery_id": row.delivery_id, "webhook_id": row.webhook_id, "attempts": attempts, "error": error}})
        else:
            delay = backoff_s(attempts, self.config, self._rng)
            values = {"next_attempt_at": now + dt.timedelta(seconds=delay), "last_error": error[:256]}
            result = "retry"
        async with self._engine.begin() as conn:
            await conn.execute(deliveries.update().where(deliveries.c.delivery_id == row.delivery_id)
                               .values(attempts=attempts, **values))
        if self._metrics is not None:
            self._metrics.webhook_deliveries.labels(result).inc()

    def _post(self, url: str, body: bytes, secret: str, delivery_id: str, event_type: str) -> str | None:
        # Signed here, on the sending thread just before the POST (not when the attempt was scheduled), so a busy
        # thread pool cannot age the timestamp towards the receivers' replay window.
        header = signature.sign(secret, body, int(self._clock.now().timestamp()))
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", signature.HEADER: header, "X-Xcwl-Delivery": delivery_id,
            "X-Xcwl-Event": event_type, "User-Agent": "xcwl-webhooks/1"})
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as resp:  # noqa: S310 - http(s) only
                status = resp.status
        except urllib.error.HTTPError as err:
            return f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            return f"{type(err).__name__}: {str(err)[:120]}"
        return None if 200 <= status < 300 else f"HTTP {status}"
