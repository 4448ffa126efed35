"""Rollup tables, in their own MetaData, migrated by the ``cp_rollup`` Alembic branch (``cp_rollup_0001``; ``NUMERIC``
decimals on PostgreSQL since ``cp_rollup_0003``).

One row per unordered pair {a, b} (a = smaller id) and bucket, in two granularities with the same columns:

* ``rollup_pair_hours``   bucket = the UTC hour (history and series; pruned after ``hour_retention``)
* ``rollup_pair_months``  bucket = the first instant of the UTC month (GMV per month; pruned after
                          ``month_retention``)

Columns per direction (``_ab`` = a exports to b, i.e. b imports from a; ``_ba`` the other way):

* ``exports``    change of the counted value in the reference unit (the balance rule of ``cp_server.risk.ledger``)
* ``amount``     the same orders' amounts in the exporter's own currency
* ``orders``     change of the number of counted orders (an order that stops counting subtracts one)
* ``views``      views of the exporter's imported offers reported by the importer's node
* ``checkouts``  PlaceOrder operations the importer's node started for them
* ``events``     order events stored for the pair (both directions, the CP's GRACE_EXPIRED markers included)

Decimals are ``NUMERIC`` on PostgreSQL and plain decimal text on SQLite (which has no exact decimal type);
``RollupDecimal`` reads and binds them as ``Decimal`` on both. Every column is written by addition in SQL
(``cp_server.rollups.writer``: ``x = x + n``, on SQLite an exact ``Decimal`` addition registered as a function),
so one upsert per table and batch needs no read first, and the view counts a node reports merge with the ingest
of the same pair without a lock.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from cp_server.risk.ledger import dec_str
from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

WL = sa.String(63)


class RollupDecimal(sa.types.TypeDecorator[Decimal]):
    """An exact decimal: ``NUMERIC`` on PostgreSQL, plain decimal text on SQLite; ``Decimal`` in and out."""

    impl = sa.String(96)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Numeric(asdecimal=True))
        return dialect.type_descriptor(sa.String(96))

    def process_bind_param(self, value: Decimal | str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = value if isinstance(value, Decimal) else Decimal(value)
        return number if dialect.name == "postgresql" else dec_str(number)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


DECIMALS = ("exports_ab", "exports_ba", "amount_ab", "amount_ba")
"""Exact decimals (``RollupDecimal``), written by the ingest transaction under the pair's lock."""
COUNTERS = ("orders_ab", "orders_ba", "views_ab", "views_ba", "checkouts_ab", "checkouts_ba", "events")
"""Columns updated by addition in SQL."""


def _table(name: str, bucket: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("wl_a", WL, primary_key=True),
        sa.Column("wl_b", WL, primary_key=True),
        sa.Column(bucket, UtcDateTime(), primary_key=True),
        *(sa.Column(c, RollupDecimal(), nullable=False) for c in DECIMALS),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in COUNTERS),
        sa.Index(f"ix_{name}_{bucket}", bucket),
    )


hours = _table("rollup_pair_hours", "hour")
months = _table("rollup_pair_months", "month")
