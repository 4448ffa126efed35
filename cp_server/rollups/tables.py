"""Rollup tables, in their own MetaData, migrated by the ``cp_rollup`` Alembic branch (``cp_rollup_0001``).

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

Decimals are plain decimal strings (as in ``risk_*``): sums are done in Python with ``Decimal`` under the pair's
lock, so both backends give the same digits. Counters are integers updated with ``x = x + n``, so the view
counts a node reports merge with the ingest of the same pair without a lock.
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

WL = sa.String(63)
DEC = sa.String(96)

DECIMALS = ("exports_ab", "exports_ba", "amount_ab", "amount_ba")
"""Columns summed as Decimal (written only by the ingest transaction, under the pair's lock)."""
COUNTERS = ("orders_ab", "orders_ba", "views_ab", "views_ba", "checkouts_ab", "checkouts_ba", "events")
"""Columns updated by addition in SQL."""


def _table(name: str, bucket: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("wl_a", WL, primary_key=True),
        sa.Column("wl_b", WL, primary_key=True),
        sa.Column(bucket, UtcDateTime(), primary_key=True),
        *(sa.Column(c, DEC, nullable=False) for c in DECIMALS),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in COUNTERS),
        sa.Index(f"ix_{name}_{bucket}", bucket),
    )


hours = _table("rollup_pair_hours", "hour")
months = _table("rollup_pair_months", "month")
