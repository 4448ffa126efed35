"""The importer's snapshot of other WLs' offers: page application, hiding, re-pricing and the storefront's reads.

Invariants kept by ``ImportedCatalog`` (one asyncio lock per exporter serializes the writers of its rows):

* a page's rows and the exporter's cursor are written in ONE transaction, so a crash mid-page loses the page and
  the next run fetches it again from the stored cursor (nothing half-applied, nothing skipped);
* every row of an exporter is priced with the FX version recorded in its cursor row: a page arriving under a new
  FX version first re-prices the existing rows in the same transaction;
* a full sync is mark-and-sweep: it writes a new ``generation`` and, when its last page lands, deletes the
  exporter's rows of older generations (offers that vanished while the cursor was reset);
* ``hide`` deletes an exporter's rows and cursor; reads also filter by the exporters importable *now*, so a policy
  change hides offers at once, before any write.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from xporty.trader.v1 import offer_pb2
from xwl_runtime.clock import Clock
from xwl_runtime.money import MoneyError, canonical, convert_for_importer, format_amount, parse_price

from .tables import imported_offers, sync_cursors
from .visibility import ImportTerms

log = logging.getLogger(__name__)

BeforeCommit = Callable[[str, int], Awaitable[None]]
"""Test hook: called with (exporter, rows written) after a page's rows are written, before the commit."""


@dataclass
class CursorState:
    """What ``sync_cursors`` holds for one exporter."""

    cursor: str = ""
    full_sync: bool = True
    generation: int = 1
    fx_version: int = 0
    exists: bool = False


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_COLS = [c.name for c in imported_offers.c]
_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME storage format (UtcDateTime reads it back)


def _upsert_sql(dialect: str) -> str:
    """One upsert statement run with the driver's executemany: SQLAlchemy's per-row bind processing is the
    dominant cost of a 5,000-row page, and these rows are plain strings, ints, bools and one timestamp."""
    cols = ", ".join(_COLS)
    if dialect == "sqlite":
        return f"INSERT OR REPLACE INTO imported_offers ({cols}) VALUES ({', '.join('?' for _ in _COLS)})"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLS if c != "imported_offer_id")
    return (f"INSERT INTO imported_offers ({cols}) VALUES ({', '.join('%s' for _ in _COLS)}) "
            f"ON CONFLICT (imported_offer_id) DO UPDATE SET {updates}")


def imported_id(exporter: str, offer_id: str) -> str:
    return f"{exporter}:{offer_id}"


def price_in(terms: ImportTerms, source_price: Decimal) -> Decimal:
    """The source price in this WL's currency under ``terms`` (the one rounding rule of xwl_runtime.money)."""
    return convert_for_importer(source_price, fx_rate=terms.fx_rate, exporter_is_wl_a=terms.exporter_is_wl_a,
                                importer_decimals=terms.decimals)


def _fx_values(terms: ImportTerms) -> dict[str, Any]:
    return {"currency": terms.currency, "fx_rate": canonical(terms.fx_rate), "fx_inverse": not terms.exporter_is_wl_a,
            "fx_version": terms.fx_version}


class ImportedCatalog:
    """The importer's snapshot store."""

    def __init__(self, engine: AsyncEngine, clock: Clock, *, before_commit: BeforeCommit | None = None) -> None:
        self.engine = engine
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._sqlite_writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self.before_commit = before_commit

    def _writing(self) -> contextlib.AbstractAsyncContextManager[object]:
        """On SQLite, one snapshot transaction at a time: SQLite has one writer anyway, and writers that collide
        wait in its busy handler, which sleeps in steps of up to 100 ms; queueing here hands the lock over at once."""
        return self._sqlite_writer if self._sqlite_writer is not None else contextlib.nullcontext()

    def lock(self, exporter: str) -> asyncio.Lock:
        return self._locks.setdefault(exporter, asyncio.Lock())

    # --- cursor ---------------------------------------------------------------------------------------------
    async def load_cursor(self, exporter: str) -> CursorState:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(sync_cursors).where(sync_cursors.c.exporter_wl == exporter))).first()
        if row is None:
            return CursorState()
        return CursorState(row.cursor, row.full_sync, row.generation, row.fx_version, exists=True)

    async def _save_cursor(self, conn: AsyncConnection, exporter: str, state: CursorState) -> None:
        values = {"cursor": state.cursor, "full_sync": state.full_sync, "generation": state.generation,
                  "fx_version": state.fx_version, "updated_at": self._clock.now()}
        if state.exists:
            await conn.execute(sa.update(sync_cursors).where(sync_cursors.c.exporter_wl == exporter).values(values))
        else:
            await conn.execute(sa.insert(sync_cursors).values(exporter_wl=exporter, **values))
            state.exists = True

    async def restart_full_sync(self, exporter: str) -> None:
        """Forget the cursor but keep the rows: the next pages form a new generation, then older rows are swept."""
        async with self.lock(exporter):
            state = await self.load_cursor(exporter)
            state.cursor, state.full_sync, state.generation = "", True, state.generation + 1
            async with self._writing(), self.engine.begin() as conn:
                await self._save_cursor(conn, exporter, state)
        log.info("full sync restarted", extra={"fields": {"exporter": exporter, "generation": state.generation}})

    # --- writes ---------------------------------------------------------------------------------------------
    @staticmethod
    def _row(exporter: str, terms: ImportTerms, offer: offer_pb2.Offer, generation: int, now: Any,
             fx: tuple[str, bool, int], sqlite: bool) -> tuple[Any, ...] | None:
        """One row in ``_COLS`` order, driver-ready; None when the exporter sent a bad price or currency."""
        price = offer.unit_price
        if price.currency != terms.source_currency:
            return None
        try:
            source = parse_price(price.amount, terms.source_decimals)
        except MoneyError:
            return None
        manager = offer.manager
        fx_rate, fx_inverse, fx_version = fx
        return (
            imported_id(exporter, offer.offer_id), exporter, offer.offer_id, offer.title, offer.description,
            offer.category, terms.source_currency, f"{source:f}", terms.currency, f"{price_in(terms, source):f}",
            fx_rate, int(fx_inverse) if sqlite else fx_inverse, fx_version, offer.stock,
            _JSON.encode(list(offer.image_urls)), manager.name, manager.email, manager.phone, offer.revision,
            generation, now,
        )

    async def apply_page(
        self, exporter: str, terms: ImportTerms, state: CursorState, changes: Sequence[offer_pb2.OfferChange],
        next_cursor: str, has_more: bool, *, still_importable: Callable[[], bool],
    ) -> int:
        """Write one feed page and the new cursor in one transaction; returns rows upserted (0 if refused now)."""
        async with self.lock(exporter):
            if not still_importable():  # hidden while the page was in flight: drop it
                return 0
            sqlite = self.engine.dialect.name == "sqlite"
            now = self._clock.now()
            stamp = now.astimezone(dt.UTC).strftime(_SQLITE_TS) if sqlite else now
            fx = (canonical(terms.fx_rate), not terms.exporter_is_wl_a, terms.fx_version)
            gone: list[str] = []
            rows: list[tuple[Any, ...]] = []
            for change in changes:
                row = None
                if not change.tombstone and change.HasField("offer"):
                    row = self._row(exporter, terms, change.offer, state.generation, stamp, fx, sqlite)
                    if row is None:
                        log.warning("imported offer refused: bad price or currency",
                                    extra={"fields": {"exporter": exporter, "offer_id": change.offer_id}})
                if row is None:
                    gone.append(imported_id(exporter, change.offer_id))
                else:
                    rows.append(row)
            async with self._writing(), self.engine.begin() as conn:
                if state.fx_version != terms.fx_version:
                    await self._reprice(conn, exporter, terms)
                    state.fx_version = terms.fx_version
                if gone:
                    await conn.execute(sa.delete(imported_offers).where(imported_offers.c.imported_offer_id.in_(gone)))
                if rows:
                    await conn.exec_driver_sql(_upsert_sql(self.engine.dialect.name), rows)
                swept = 0
                if not has_more and state.full_sync:
                    swept = (await conn.execute(sa.delete(imported_offers).where(
                        imported_offers.c.source_wl == exporter,
                        imported_offers.c.sync_generation < state.generation))).rowcount
                    state.full_sync = False
                state.cursor = next_cursor
                await self._save_cursor(conn, exporter, state)
                if self.before_commit is not None:
                    await self.before_commit(exporter, len(rows))
        if swept:
            log.info("full sync swept stale offers", extra={"fields": {"exporter": exporter, "count": swept}})
        return len(rows)

    async def _reprice(self, conn: AsyncConnection, exporter: str, terms: ImportTerms) -> int:
        found = (await conn.execute(
            sa.select(imported_offers.c.imported_offer_id, imported_offers.c.source_price)
            .where(imported_offers.c.source_wl == exporter)
        )).all()
        if not found:
            return 0
        fx = _fx_values(terms)
        params = [{"b_id": r.imported_offer_id,
                   "b_price": format_amount(price_in(terms, Decimal(r.source_price)), terms.decimals)} for r in found]
        await conn.execute(
            sa.update(imported_offers).where(imported_offers.c.imported_offer_id == sa.bindparam("b_id"))
            .values(price=sa.bindparam("b_price"), **fx),
            params,
        )
        log.info("imported offers re-priced", extra={"fields": {"exporter": exporter, "count": len(params),
                                                                "fx_version": terms.fx_version}})
        return len(params)

    async def reprice(self, exporter: str, terms: ImportTerms) -> int:
        """Re-price the exporter's whole snapshot if it was priced under another FX version; returns rows changed."""
        async with self.lock(exporter):
            state = await self.load_cursor(exporter)
            if not state.exists or state.fx_version == terms.fx_version:
                return 0
            async with self._writing(), self.engine.begin() as conn:
                count = await self._reprice(conn, exporter, terms)
                state.fx_version = terms.fx_version
                await self._save_cursor(conn, exporter, state)
            return count

    async def hide(self, exporter: str, reason: str) -> int:
        """Remove the exporter's offers and cursor (its next import starts with a full sync)."""
        async with self.lock(exporter):
            async with self._writing(), self.engine.begin() as conn:
                count = (await conn.execute(
                    sa.delete(imported_offers).where(imported_offers.c.source_wl == exporter))).rowcount
                await conn.execute(sa.delete(sync_cursors).where(sync_cursors.c.exporter_wl == exporter))
        log.info("imported offers hidden", extra={"fields": {"exporter": exporter, "reason": reason, "count": count}})
        return count

    async def known_exporters(self) -> set[str]:
        """Exporters with rows or a cursor in the snapshot."""
        async with self.engine.connect() as conn:
            a = (await conn.execute(sa.select(sync_cursors.c.exporter_wl))).scalars().all()
            b = (await conn.execute(sa.select(imported_offers.c.source_wl).distinct())).scalars().all()
        return set(a) | set(b)
