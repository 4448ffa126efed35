"""Storing and reading offer digests: the latest one per (exporter, destination) replaces the previous one.

``report`` validates the whole request first (``validation``) and writes nothing on a refusal; then, in one write
transaction, upserts each digest (``INSERT … ON CONFLICT DO UPDATE``) unless the stored one was generated later (a
retried old report arriving after a newer one does not roll the digest back). ``latest`` is what the
compensation plan reads inside the ingest transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.store import schema
from xporty.cp.v1 import telemetry_pb2

from .tables import offer_digests
from .validation import Digest, DigestOffer, ExporterTerms, Limits, validate

BeginWrite = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


@dataclass(frozen=True)
class StoredDigest:
    """A digest as stored, with the CP's receipt time."""

    digest: Digest
    received_at: dt.datetime


def _offers_json(offers: Sequence[DigestOffer]) -> str:
    return json.dumps([{"offer_id": o.offer_id, "title": o.title, "currency": o.currency,
                        "unit_price": format(o.unit_price, "f"), "stock": o.stock} for o in offers],
                      separators=(",", ":"))


def _offers_of(text: str) -> tuple[DigestOffer, ...]:
    return tuple(DigestOffer(str(o["offer_id"]), str(o["title"]), str(o["currency"]), Decimal(o["unit_price"]),
                             int(o["stock"])) for o in json.loads(text))


async def exporter_terms(conn: AsyncConnection, exporter_wl: str) -> ExporterTerms | None:
    """The exporter's currency and registered partners, or None if it is not a registered WL."""
    wl, p = schema.white_labels, schema.pairs
    currency = await conn.scalar(sa.select(wl.c.currency).where(wl.c.wl_id == exporter_wl))
    if currency is None:
        return None
    rows = (await conn.execute(sa.select(p.c.wl_a, p.c.wl_b).where(
        sa.or_(p.c.wl_a == exporter_wl, p.c.wl_b == exporter_wl)))).all()
    return ExporterTerms(str(currency), frozenset(r.wl_b if r.wl_a == exporter_wl else r.wl_a for r in rows))


class DigestStore:
    """Replace and read the latest digests (writes go through ``begin_write``: the risk engine's write gate)."""

    def __init__(self, engine: AsyncEngine, begin_write: BeginWrite, limits: Limits) -> None:
        self._engine = engine
        self._begin_write = begin_write
        self._limits = limits

    async def report(
        self, exporter_wl: str, digests: Sequence[telemetry_pb2.OfferDigest], now: dt.datetime
    ) -> tuple[int, list[Digest]]:
        """Validate then store ``digests`` of ``exporter_wl``; (digests now current, the validated digests)."""
        async with self._engine.connect() as conn:
            terms = await exporter_terms(conn, exporter_wl)
        if terms is None:
            terms = ExporterTerms("", frozenset())  # every destination is then refused by name
        valid = validate(exporter_wl, digests, terms, self._limits, now)
        if not valid:
            return 0, valid
        stored = 0
        async with self._begin_write() as conn:
            for d in valid:
                stored += await _upsert(conn, d, now)
        return stored, valid

    @staticmethod
    async def latest(conn: AsyncConnection, exporter_wl: str, destination_wl: str) -> StoredDigest | None:
        """The current digest of ``exporter_wl`` for ``destination_wl`` (read in ``conn``'s transaction)."""
        t = offer_digests
        row = (await conn.execute(sa.select(t).where(
            t.c.exporter_wl == exporter_wl, t.c.destination_wl == destination_wl))).first()
        if row is None:
            return None
        return StoredDigest(Digest(row.exporter_wl, row.destination_wl, row.generate_time, _offers_of(row.offers)),
                            row.received_at)

    async def all(self) -> AsyncIterator[StoredDigest]:
        """Every stored digest (for reports and tests), by exporter then destination."""
        t = offer_digests
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(t).order_by(t.c.exporter_wl, t.c.destination_wl))).all()
        for row in rows:
            yield StoredDigest(Digest(row.exporter_wl, row.destination_wl, row.generate_time,
                                      _offers_of(row.offers)), row.received_at)


async def _upsert(conn: AsyncConnection, d: Digest, now: dt.datetime) -> int:
    t = offer_digests
    values: dict[str, Any] = {"exporter_wl": d.exporter_wl, "destination_wl": d.destination_wl,
                              "generate_time": d.generate_time, "received_at": now, "offer_count": len(d.offers),
                              "offers": _offers_json(d.offers)}
    insert = postgresql.insert(t) if conn.dialect.name == "postgresql" else sqlite.insert(t)
    stmt = insert.values(values).on_conflict_do_update(
        index_elements=[t.c.exporter_wl, t.c.destination_wl],
        set_={k: insert.excluded[k] for k in ("generate_time", "received_at", "offer_count", "offers")},
        where=t.c.generate_time <= insert.excluded.generate_time,
    ).returning(t.c.exporter_wl)  # no row when the stored digest is newer (rowcount is not portable here)
    return len((await conn.execute(stmt)).all())
