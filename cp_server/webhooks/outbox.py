"""The webhook outbox: deliveries queued in the transaction of the fact, sent by one loop with retries.

``enqueue`` runs inside the caller's transaction (a signal's, a discrepancy's), so an event is queued exactly when
its fact commits: one row per subscribed endpoint. ``run`` delivers due rows: a JSON POST signed with the
endpoint's secret (``signature``), 2xx = delivered; anything else (status, timeout, connection error) is retried
with exponential backoff and full jitter until ``max_attempts``, then the row is DEAD (the dead letter, listed by
``xcwl webhook list``). A row is claimed by a conditional update before it is sent, so CP replicas sharing the
database never send it twice at once. The loop wakes on ``kick`` (this process queued something) or every
``scan_interval_s`` (another replica did, or a retry fell due).
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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.metrics import CpMetrics
from xwl_runtime.clock import Clock

from . import signature
from .settings import WebhookConfig
from .tables import deliveries, endpoints

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD = "PENDING", "DELIVERED", "DEAD"


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
        self.kick()
        return ids

    def kick(self) -> None:
        """Look at the outbox soon (called after queueing; the row is visible once its transaction commits)."""
        asyncio.get_running_loop().call_later(0.05, self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.deliver_due()
            except sa.exc.SQLAlchemyError:
                log.exception("webhook outbox pass failed; retrying")
            self._wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waiters, timeout=self.config.scan_interval_s, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()

    async def deliver_due(self) -> int:
        """Send every due delivery once (concurrently); returns how many were attempted."""
        now = self._clock.now()
        async with self._engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(deliveries, endpoints.c.url, endpoints.c.secret)
                .join(endpoints, endpoints.c.webhook_id == deliveries.c.webhook_id)
                .where(deliveries.c.state == PENDING, deliveries.c.next_attempt_at <= now)
                .order_by(deliveries.c.next_attempt_at).limit(self.config.batch))).all()
        claimed = [r for r in rows if await self._claim(r, now)]
        await asyncio.gather(*(self._attempt(r) for r in claimed))
        return len(claimed)

    async def _claim(self, row: Any, now: dt.datetime) -> bool:
        lease = now + dt.timedelta(seconds=self.config.timeout_s * 2)
        async with self._engine.begin() as conn:
            result = await conn.execute(deliveries.update().where(
                deliveries.c.delivery_id == row.delivery_id, deliveries.c.state == PENDING,
                deliveries.c.attempts == row.attempts).values(next_attempt_at=lease))
        return bool(result.rowcount == 1)

    async def _attempt(self, row: Any) -> None:
        body = row.body.encode()
        header = signature.sign(row.secret, body, int(self._clock.now().timestamp()))
        error = await asyncio.to_thread(self._post, row.url, body, header, row.delivery_id, row.event_type)
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

    def _post(self, url: str, body: bytes, header: str, delivery_id: str, event_type: str) -> str | None:
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
