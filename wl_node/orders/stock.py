"""The order desk's view of the exporter's offers: read the terms, reserve and release stock, inside a transaction.

The offers table belongs to the catalog feature; the desk only needs four things from it and gets them through
``OfferStock``, so the catalog can change its schema (or bump its feed revision on every stock change) without the
desk knowing. ``SqlOfferStock`` is the implementation over any table with an id, a stock column and a price.

Reservation is a single conditional UPDATE (``stock = stock - :q WHERE id = :id AND stock >= :q``): on PostgreSQL
the row lock makes concurrent reservations queue on that row and re-check the condition on the latest version; on
SQLite ``BEGIN IMMEDIATE`` serializes writers. Stock therefore never goes negative and is never oversold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa

from .rawsql import Sql, read_time


@dataclass(frozen=True)
class OfferTerms:
    """What an order is priced and checked against."""

    offer_id: str
    currency: str
    unit_price: Decimal
    stock: int
    published_at: dt.datetime | None = None
    """When the offer was first published (export delay); None when unknown."""


class OfferStock(Protocol):
    """Access to the exporter's offers within the caller's transaction."""

    def terms(self, conn: sa.Connection, offer_id: str) -> OfferTerms | None:
        """The current terms of a live (not withdrawn) offer, or None."""

    def reserve(self, conn: sa.Connection, offer_id: str, quantity: int) -> bool:
        """Take ``quantity`` units if that many are in stock; False (and nothing changed) otherwise."""

    def release(self, conn: sa.Connection, offer_id: str, quantity: int) -> None:
        """Give ``quantity`` units back (compensation)."""


StockChanged = Callable[[sa.Connection, str], None]
"""Called in the same transaction after a reservation or release (e.g. the catalog bumps the offer's revision)."""


class SqlOfferStock:
    """``OfferStock`` over a SQL table; columns are passed explicitly so any offers table fits."""

    def __init__(
        self,
        *,
        id_col: sa.Column[str],
        stock_col: sa.Column[int],
        price_col: sa.Column[str],
        currency_col: sa.Column[str] | None = None,
        currency: str | Callable[[], str] = "",
        published_col: sa.Column[dt.datetime] | None = None,
        live: sa.ColumnElement[bool] | None = None,
        on_change: StockChanged | None = None,
    ) -> None:
        self._table = id_col.table
        self._id = id_col
        self._stock = stock_col
        self._price = price_col
        self._currency_col = currency_col
        self._currency = currency
        self._published = published_col
        self._on_change = on_change
        cols: list[sa.ColumnElement[Any]] = [id_col, stock_col, price_col]
        if currency_col is not None:
            cols.append(currency_col)
        if published_col is not None:
            cols.append(published_col)
        # Built once with bind parameters: constructing statements per call costs more than running them.
        live_conds = [live] if live is not None else []
        self._select = sa.select(*cols).where(id_col == sa.bindparam("b_id"), *live_conds)
        self._reserve = (
            sa.update(self._table)
            .where(id_col == sa.bindparam("b_id"), *live_conds, stock_col >= sa.bindparam("b_qty"))
            .values({stock_col: stock_col - sa.bindparam("b_qty")})
        )
        # Not filtered on "live": a withdrawn offer still gets its units back, so stock stays exact.
        self._release = (
            sa.update(self._table).where(id_col == sa.bindparam("b_id"))
            .values({stock_col: stock_col + sa.bindparam("b_qty")})
        )
        # The hot path runs the same statements as fixed SQL text on the driver connection (see ``rawsql``).
        self._sql_select = Sql.of(self._select)
        self._sql_reserve = Sql.of(self._reserve)
        self._sql_release = Sql.of(self._release)

    def terms(self, conn: sa.Connection, offer_id: str) -> OfferTerms | None:
        row = self._sql_select.run(conn, {"b_id": offer_id}).fetchone()
        if row is None:
            return None
        # Columns in the order of ``self._select``: id, stock, price[, currency][, published].
        rest = row[3:]
        if self._currency_col is not None:
            currency = str(rest[0])
            rest = rest[1:]
        else:
            currency = self._currency() if callable(self._currency) else self._currency
        return OfferTerms(
            offer_id=offer_id,
            currency=currency,
            unit_price=Decimal(str(row[2])),
            stock=int(row[1]),
            published_at=read_time(rest[0]) if self._published is not None else None,
        )

    def reserve(self, conn: sa.Connection, offer_id: str, quantity: int) -> bool:
        if self._sql_reserve.run(conn, {"b_id": offer_id, "b_qty": quantity}).rowcount != 1:
            return False
        if self._on_change is not None:
            self._on_change(conn, offer_id)
        return True

    def release(self, conn: sa.Connection, offer_id: str, quantity: int) -> None:
        self._sql_release.run(conn, {"b_id": offer_id, "b_qty": quantity})
        if self._on_change is not None:
            self._on_change(conn, offer_id)
