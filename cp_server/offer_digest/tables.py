"""The offer digest table, in its own MetaData (migrated by the ``cp_risk`` Alembic branch, ``cp_risk_0003``).

``risk_offer_digests``: one row per (exporter, destination) holding the exporter's latest digest for that
destination. ``offers`` is a JSON list of ``{"offer_id", "title", "currency", "unit_price", "stock"}`` (prices as
decimal strings in the exporter's currency): the digest is read and replaced whole, never queried per offer.
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

WL = sa.String(63)

offer_digests = sa.Table(
    "risk_offer_digests",
    metadata,
    sa.Column("exporter_wl", WL, primary_key=True),
    sa.Column("destination_wl", WL, primary_key=True),
    sa.Column("generate_time", UtcDateTime(), nullable=False),  # when the exporter's node built the digest
    sa.Column("received_at", UtcDateTime(), nullable=False),  # when the CP stored it
    sa.Column("offer_count", sa.Integer(), nullable=False),
    sa.Column("offers", sa.Text(), nullable=False),  # JSON list, see the module docstring
)
