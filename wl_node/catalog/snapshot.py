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
import decimal
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wl_node.privacy.accounts import ERASED_MARK
from xporty.trader.v1 import offer_pb2
from xwl_runtime import pii
from xwl_runtime.clock import Clock
from xwl_runtime.money import (
    MAX_AMOUNT_DIGITS,
    MoneyError,
    canonical,
    convert,
    convert_for_importer,
    format_amount,
    parse_price,
)
from xwl_runtime.text import first_forbidden

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


# A JSON string needs escaping only for these (json.dumps with ensure_ascii=False escapes nothing else).
_JSON_PLAIN = re.compile(r'[^"\\\x00-\x1f]*').fullmatch
# Exact integer arithmetic in C for the inverse conversion: anything it cannot do exactly traps, and the row falls
# back to xwl_runtime.money (96 digits cover every amount and rate the validators accept).
_EXACT = decimal.Context(prec=96, rounding=decimal.ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999,
                         traps=[decimal.InvalidOperation, decimal.Inexact, decimal.DivisionByZero, decimal.Overflow])


def json_list(items: Sequence[str]) -> str:
    """``json.dumps(list(items), ensure_ascii=False, separators=(",", ":"))``, without the encoder's per-call set-up
    when no item needs escaping (the usual URL)."""
    if len(items) == 1:  # the usual case, without a generator
        item = items[0]
        if _JSON_PLAIN(item) is not None:
            return '["' + item + '"]'
    elif all(_JSON_PLAIN(item) is not None for item in items):
        return '["' + '","'.join(items) + '"]' if items else "[]"
    return _JSON.encode(list(items))


class PagePricer:
    """Parses and converts one exporter's prices for a page: ``parse_price`` and ``convert_for_importer`` of
    ``xwl_runtime.money`` (the one rounding rule) with their per-call set-up hoisted out of the row loop.

    ``__call__`` returns ``(source_price, converted_price)`` as fixed-point strings, or None for a price the
    exporter should not have sent; a test checks it against the money module for arbitrary amounts and rates.
    """

    def __init__(self, terms: ImportTerms) -> None:
        self._terms = terms
        d = terms.source_decimals
        frac = rf"(?:\.[0-9]{{1,{d}}})?" if d > 0 else ""
        # The canonical shape only: ASCII digits without leading zeros, at most MAX_AMOUNT_DIGITS integer digits,
        # at most d decimals. Such a text is already its own fixed-point form (f"{Decimal(text):f}" == text); any
        # other text goes through parse_price, which accepts or refuses it exactly as before.
        self._plain = re.compile(rf"(?:[1-9][0-9]{{0,{MAX_AMOUNT_DIGITS - 1}}}|0){frac}").fullmatch
        self._rate = terms.fx_rate
        self._decimals = terms.decimals
        self._forward = terms.exporter_is_wl_a
        self._seen: dict[str, tuple[str, str] | None] = {}  # real catalogs repeat prices (9.99, 19.90, ...)

    def _source(self, text: str) -> tuple[Decimal, str] | None:
        if self._plain(text) is not None:
            value = Decimal(text)
            if value > 0:
                return value, text
        try:
            value = parse_price(text, self._terms.source_decimals)
        except MoneyError:
            return None
        return value, f"{value:f}"

    def _inverse(self, amount: Decimal) -> Decimal:
        """round_half_even(amount / rate, decimals) for amount > 0, on exact Decimal integers (as convert_inverse)."""
        try:
            # The ambient context is never used: every operation names _EXACT (divmod truncates; both are > 0).
            quotient, remainder = _EXACT.divmod(_EXACT.scaleb(amount, self._decimals), self._rate)
            twice = _EXACT.multiply(remainder, 2)
            if twice > self._rate or (twice == self._rate and _EXACT.remainder(quotient, 2) == 1):
                quotient = _EXACT.add(quotient, 1)
            return _EXACT.scaleb(quotient, -self._decimals)
        except decimal.DecimalException:
            return price_in(self._terms, amount)

    def __call__(self, text: str) -> tuple[str, str] | None:
        try:
            return self._seen[text]
        except KeyError:
            pass
        parsed = self._source(text)
        result = None
        if parsed is not None:
            source, source_text = parsed
            converted = convert(source, self._rate, self._decimals) if self._forward else self._inverse(source)
            result = source_text, f"{converted:f}"
        if len(self._seen) < 4096:
            self._seen[text] = result
        return result


def _fx_values(terms: ImportTerms) -> dict[str, Any]:
    return {"currency": terms.currency, "fx_rate": canonical(terms.fx_rate), "fx_inverse": not terms.exporter_is_wl_a,
            "fx_version": terms.fx_version}


def _unsafe_text(offer: offer_pb2.Offer) -> bool:
    return any(first_forbidden(text) is not None
               for text in (offer.title, offer.description, offer.category, offer.manager.name))


def masked_contact(name: str, email: str, phone: str) -> tuple[str, str, str]:
    """The contact as the importer stores it: masked again (idempotent on the exporter's masked form), so an
    exporter that sends a clear contact still leaves none in this node's store."""
    if email == ERASED_MARK:
        return ERASED_MARK, ERASED_MARK, ERASED_MARK
    return (pii.mask_name(name)[:200], pii.mask_email(email)[:254] if email else "", pii.mask_phone(phone)[:40])


def _page_rows(exporter: str, terms: ImportTerms, changes: Sequence[offer_pb2.OfferChange], generation: int,
               stamp: Any, sqlite: bool) -> tuple[list[str], list[tuple[Any, ...]]]:
    """A page as driver-ready rows in ``_COLS`` order, plus the imported ids to delete (tombstones and offers with
    a bad price or currency). This loop is the importer's per-offer cost: it only reads the parsed messages'
    fields and converts the price; everything per page is computed once."""
    pricer = PagePricer(terms)
    fx_rate, fx_inverse, fx_version = canonical(terms.fx_rate), not terms.exporter_is_wl_a, terms.fx_version
    if sqlite:
        fx_inverse = int(fx_inverse)  # type: ignore[assignment]  # the driver-level row skips SQLAlchemy's Boolean
    source_currency, currency, prefix = terms.source_currency, terms.currency, f"{exporter}:"
    gone: list[str] = []
    rows: list[tuple[Any, ...]] = []
    contacts: dict[tuple[str, str, str], tuple[str, str, str]] = {}  # a page repeats a few managers' contacts
    for change in changes:
        prices = None
        if not change.tombstone and change.HasField("offer"):
            offer = change.offer
            if offer.unit_price.currency == source_currency:
                prices = pricer(offer.unit_price.amount)
            if prices is None:
                log.warning("imported offer refused: bad price or currency",
                            extra={"fields": {"exporter": exporter, "offer_id": change.offer_id}})
            elif _unsafe_text(offer):
                # The exporter validates its own offers, but the importer does not take its word for what its
                # shoppers and operators will be shown.
                log.warning("imported offer refused: control or bidi override characters in its text",
                            extra={"fields": {"exporter": exporter, "offer_id": change.offer_id}})
                prices = None
        if prices is None:
            gone.append(prefix + change.offer_id)
            continue
        manager = offer.manager
        key = (manager.name, manager.email, manager.phone)
        masked = contacts.get(key)
        if masked is None:
            masked = contacts[key] = masked_contact(*key)
        rows.append((
            prefix + offer.offer_id, exporter, offer.offer_id, offer.title, offer.description, offer.category,
            source_currency, prices[0], currency, prices[1], fx_rate, fx_inverse, fx_version, offer.stock,
            json_list(offer.image_urls), *masked, offer.revision, generation, stamp, manager.handle[:64],
        ))
    return gone, rows


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
            gone, rows = _page_rows(exporter, terms, changes, state.generation, stamp, sqlite)
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
