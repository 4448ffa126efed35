"""Retention of personal data on orders and checkouts: after the retention period the trade record stays and its
personal part (the buyer reference) is anonymised.

A node with ``NodeSettings.pii_retention`` runs ``RetentionLoop`` (hourly, batched); ``xcwl privacy retention``
runs one pass by hand. Each pass that changes rows is audited in ``subject_requests`` (kind RETENTION).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wl_node.privacy.tables import subject_requests
from xwl_runtime.clock import Clock

from .tables import PENDING, checkouts, import_ledger

log = logging.getLogger(__name__)

ANONYMISED = "[anonymised]"
RETENTION_INTERVAL_S = 3600.0
BATCH = 500


async def anonymise_before(engine: AsyncEngine, cutoff: dt.datetime, now: dt.datetime, *,
                           batch: int = BATCH) -> int:
    """Anonymise the buyer reference of settled checkouts (and their sales) created before ``cutoff``."""
    total = 0
    while True:
        async with engine.begin() as conn:
            ids = list((await conn.execute(
                sa.select(checkouts.c.checkout_id)
                .where(checkouts.c.created_at < cutoff, checkouts.c.status != PENDING,
                       checkouts.c.buyer_reference != ANONYMISED)
                .order_by(checkouts.c.checkout_id).limit(batch))).scalars())
            if not ids:
                break
            await conn.execute(sa.update(checkouts).where(checkouts.c.checkout_id.in_(ids))
                               .values(buyer_reference=ANONYMISED))
            await conn.execute(sa.update(import_ledger).where(import_ledger.c.checkout_id.in_(ids))
                               .values(buyer_reference=ANONYMISED))
            total += len(ids)
    if total:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(subject_requests).values(
                kind="RETENTION", subject_index="", requested_by="retention", affected=total, at=now))
    return total


class RetentionLoop:
    """Background loop of a node with a retention period."""

    def __init__(self, engine: AsyncEngine, clock: Clock, retention: dt.timedelta,
                 interval_s: float = RETENTION_INTERVAL_S) -> None:
        self._engine = engine
        self._clock = clock
        self._retention = retention
        self._interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self._clock.now()
            try:
                done = await anonymise_before(self._engine, now - self._retention, now)
                if done:
                    log.info("personal data past retention anonymised", extra={"fields": {"checkouts": done}})
            except sa.exc.SQLAlchemyError:
                log.exception("retention pass failed; retrying at the next interval")
            await self._clock.wait_any(stop, timeout=self._interval_s)
