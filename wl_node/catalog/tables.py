"""SQLAlchemy Core tables of the catalog (schema created by the ``node_catalog`` Alembic branch).

Exporter side:

* ``offers``: this WL's exportable offers, one row per offer, tombstones kept (``withdrawn``). ``change_sequence``
  is the feed position of the offer's latest change: the table *is* the change feed, compacted per offer (as a
  compacted Kafka topic): "changes after seq" is ``WHERE change_sequence > :seq ORDER BY change_sequence``, and a
  full sync reads each offer once instead of its whole history.
* ``offer_feed``: one row holding the last sequence handed out. A writer takes the next sequence with an UPDATE on
  that row, which keeps the row locked until commit, so sequences become visible in commit order (on PostgreSQL as
  on SQLite) and a reader never skips a change that commits late with a lower number.

The exporter's ``manager_*`` columns hold the masked contact; the clear contact lives encrypted in the trader
account (``wl_node.privacy``) that ``trader_account_id`` names.

Importer side:

* ``imported_offers``: the snapshot served to the storefront, with source price, converted price, FX used. Its
  manager columns hold the contact masked as the exporter sent it, plus the opaque ``contact_handle``.
* ``sync_cursors``: per exporter, the feed cursor (written in the same transaction as the page's rows), the FX
  version the snapshot is priced with, and the mark-and-sweep generation of a full sync.

Money amounts are decimal strings (exact on every backend); times are timezone-aware UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()


BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

offers = sa.Table(
    "offers",
    metadata,
    sa.Column("offer_id", sa.String(128), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.String(100), nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("unit_price", sa.String(48), nullable=False),
    sa.Column("stock", sa.BigInteger, nullable=False),
    sa.Column("image_urls", sa.Text, nullable=False),  # JSON list
    sa.Column("manager_name", sa.String(200), nullable=False),
    sa.Column("manager_email", sa.String(254), nullable=False),
    sa.Column("manager_phone", sa.String(40), nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("change_sequence", sa.BigInteger, nullable=False, unique=True),
    sa.Column("withdrawn", sa.Boolean, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),  # the serialized trader.v1.Offer at this revision
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("trader_account_id", sa.String(64), nullable=False, server_default=""),  # wl_node.privacy
)
sa.Index("ix_offers_created_at", offers.c.created_at, offers.c.offer_id)

offer_feed = sa.Table(
    "offer_feed",
    metadata,
    sa.Column("feed_id", sa.Integer, primary_key=True),
    sa.Column("last_sequence", sa.BigInteger, nullable=False),
)

imported_offers = sa.Table(
    "imported_offers",
    metadata,
    sa.Column("imported_offer_id", sa.String(200), primary_key=True),
    sa.Column("source_wl", sa.String(63), nullable=False),
    sa.Column("source_offer_id", sa.String(128), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.String(100), nullable=False),
    sa.Column("source_currency", sa.String(16), nullable=False),
    sa.Column("source_price", sa.String(48), nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("price", sa.String(48), nullable=False),
    sa.Column("fx_rate", sa.String(64), nullable=False),  # the pair's rate as the CP set it (wl_b per wl_a)
    sa.Column("fx_inverse", sa.Boolean, nullable=False),  # True when the price used the derived inverse
    sa.Column("fx_version", sa.BigInteger, nullable=False),
    sa.Column("stock", sa.BigInteger, nullable=False),
    sa.Column("image_urls", sa.Text, nullable=False),
    sa.Column("manager_name", sa.String(200), nullable=False),
    sa.Column("manager_email", sa.String(254), nullable=False),
    sa.Column("manager_phone", sa.String(40), nullable=False),
    sa.Column("source_revision", sa.BigInteger, nullable=False),
    sa.Column("sync_generation", sa.BigInteger, nullable=False),
    sa.Column("sync_time", UtcDateTime, nullable=False),
    sa.Column("contact_handle", sa.String(64), nullable=False, server_default=""),  # ask the exporter with it
)

sync_cursors = sa.Table(
    "sync_cursors",
    metadata,
    sa.Column("exporter_wl", sa.String(63), primary_key=True),
    sa.Column("cursor", sa.Text, nullable=False),
    sa.Column("full_sync", sa.Boolean, nullable=False),  # a full sync is in progress (sweep when it ends)
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("fx_version", sa.BigInteger, nullable=False),  # FX version the exporter's rows are priced with
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
