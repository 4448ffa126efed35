"""The conversion funnel's first two steps, from the importers' operational reports.

An importer's node reports, per exporter, how many of that exporter's imported offers its apps viewed and how many
PlaceOrder operations it started (``PeerOperations.offer_views`` / ``attempts``, deltas since its last report, sent
only after a change). They are added to the pair's hourly and monthly rollup rows of the report's time, in the
direction exporter → importer, by SQL addition (no lock needed against the ingest of the same pair).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk.ledger import pair_of

from . import tables as t
from .buckets import hour_of, month_of
from .writer import ensure_rows


async def add_funnel(conn: AsyncConnection, importer_wl: str, peers: Sequence[tuple[str, int, int]],
                     at: dt.datetime) -> None:
    """Add ``(exporter_wl, views, checkouts)`` of ``importer_wl`` to the buckets of ``at`` (caller's transaction)."""
    counted = sorted((p for p in peers if p[1] or p[2]), key=lambda p: pair_of(p[0], importer_wl))
    if not counted:
        return
    for table, column, bucket in ((t.hours, "hour", hour_of(at)), (t.months, "month", month_of(at))):
        keys = [pair_of(exporter, importer_wl) for exporter, _, _ in counted]
        await ensure_rows(conn, table, column, bucket, keys)
        c = table.c
        for exporter, views, checkouts in counted:
            a, b = pair_of(exporter, importer_wl)
            side = "ab" if exporter == a else "ba"
            await conn.execute(
                table.update().where(c.wl_a == a, c.wl_b == b, c[column] == bucket)
                .values({f"views_{side}": c[f"views_{side}"] + views,
                         f"checkouts_{side}": c[f"checkouts_{side}"] + checkouts}))
