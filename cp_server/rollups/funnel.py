"""The conversion funnel's first two steps, from the importers' operational reports.

An importer's node reports, per exporter, how many of that exporter's imported offers its apps viewed and how many
PlaceOrder operations it started (``PeerOperations.offer_views`` / ``attempts``, deltas since its last report, sent
only after a change). They are added to the pair's hourly and monthly rollup rows of the report's time, in the
direction exporter → importer, by SQL addition (one upsert per table, no lock needed against the ingest of the
same pair).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk.ledger import pair_of

from . import tables as t
from .buckets import hour_of, month_of
from .writer import add_rows

_COLUMNS = ("views_ab", "views_ba", "checkouts_ab", "checkouts_ba")


async def add_funnel(conn: AsyncConnection, importer_wl: str, peers: Sequence[tuple[str, int, int]],
                     at: dt.datetime) -> None:
    """Add ``(exporter_wl, views, checkouts)`` of ``importer_wl`` to the buckets of ``at`` (caller's transaction)."""
    counts: dict[tuple[str, str], list[int]] = {}
    for exporter, views, checkouts in peers:
        if not (views or checkouts):
            continue
        a, b = pair_of(exporter, importer_wl)
        c = counts.setdefault((a, b), [0, 0, 0, 0])
        side = 0 if exporter == a else 1
        c[side] += views
        c[2 + side] += checkouts
    rows = [(a, b, *c) for (a, b), c in sorted(counts.items())]
    for table, column, bucket in ((t.hours, "hour", hour_of(at)), (t.months, "month", month_of(at))):
        await add_rows(conn, table, column, bucket, _COLUMNS, rows)
