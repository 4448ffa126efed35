"""The order desk's ``OfferStock`` over the catalog's ``offers`` table (``wl_node.catalog.tables``).

A reservation or release changes an offer's stock, which importers show; with ``bump_feed`` (default) the same
transaction gives the offer a new revision and feed sequence, exactly as the catalog does for any other change,
so the importers' sync picks the new stock up. The catalog's change notifier is not poked from here (this runs in
a worker thread); its watchers see the new sequence on their next poll or notification.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from xwl_runtime.clock import Clock, SystemClock

from .rawsql import Sql, db_time, is_sqlite
from .stock import SqlOfferStock


def catalog_offer_stock(*, bump_feed: bool = True, clock: Clock | None = None) -> SqlOfferStock:
    """``SqlOfferStock`` on the catalog's live (not withdrawn) offers."""
    from wl_node.catalog.tables import offer_feed, offers  # the catalog feature owns these tables

    clock = clock or SystemClock()
    next_sequence = Sql.of(
        sa.update(offer_feed).where(offer_feed.c.feed_id == 1)
        .values(last_sequence=offer_feed.c.last_sequence + 1).returning(offer_feed.c.last_sequence)
    )
    bump = Sql.of(
        sa.update(offers).where(offers.c.offer_id == sa.bindparam("b_id"))
        .values(revision=offers.c.revision + 1, change_sequence=sa.bindparam("b_seq"),
                updated_at=sa.bindparam("b_now"))
    )

    def on_change(conn: sa.Connection, offer_id: str) -> None:
        row = next_sequence.run(conn).fetchone()
        now: dt.datetime = clock.now()
        bump.run(conn, {"b_id": offer_id, "b_seq": int(row[0]), "b_now": db_time(is_sqlite(conn), now)})

    c = offers.c
    return SqlOfferStock(
        id_col=c.offer_id, stock_col=c.stock, price_col=c.unit_price, currency_col=c.currency,
        published_col=c.created_at, live=c.withdrawn.is_(False), on_change=on_change if bump_feed else None,
    )
