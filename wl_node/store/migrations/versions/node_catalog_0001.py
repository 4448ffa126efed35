"""node_catalog: exportable offers and their feed sequence; imported offers and per-exporter sync cursors.

Revision ID: node_catalog_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "node_catalog_0001"
down_revision = None
branch_labels = ("node_catalog",)
depends_on = None


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "offers",
        sa.Column("offer_id", sa.String(128), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("unit_price", sa.String(48), nullable=False),
        sa.Column("stock", sa.BigInteger, nullable=False),
        sa.Column("image_urls", sa.Text, nullable=False),
        sa.Column("manager_name", sa.String(200), nullable=False),
        sa.Column("manager_email", sa.String(254), nullable=False),
        sa.Column("manager_phone", sa.String(40), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("change_sequence", sa.BigInteger, nullable=False, unique=True),
        sa.Column("withdrawn", sa.Boolean, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index("ix_offers_created_at", "offers", ["created_at", "offer_id"])
    op.create_table(
        "offer_feed",
        sa.Column("feed_id", sa.Integer, primary_key=True),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(sa.table("offer_feed", sa.column("feed_id"), sa.column("last_sequence")),
                   [{"feed_id": 1, "last_sequence": 0}])
    op.create_table(
        "imported_offers",
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
        sa.Column("fx_rate", sa.String(64), nullable=False),
        sa.Column("fx_inverse", sa.Boolean, nullable=False),
        sa.Column("fx_version", sa.BigInteger, nullable=False),
        sa.Column("stock", sa.BigInteger, nullable=False),
        sa.Column("image_urls", sa.Text, nullable=False),
        sa.Column("manager_name", sa.String(200), nullable=False),
        sa.Column("manager_email", sa.String(254), nullable=False),
        sa.Column("manager_phone", sa.String(40), nullable=False),
        sa.Column("source_revision", sa.BigInteger, nullable=False),
        sa.Column("sync_generation", sa.BigInteger, nullable=False),
        _ts("sync_time"),
    )
    op.create_table(
        "sync_cursors",
        sa.Column("exporter_wl", sa.String(63), primary_key=True),
        sa.Column("cursor", sa.Text, nullable=False),
        sa.Column("full_sync", sa.Boolean, nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("fx_version", sa.BigInteger, nullable=False),
        _ts("updated_at"),
    )


def downgrade() -> None:
    op.drop_table("sync_cursors")
    op.drop_table("imported_offers")
    op.drop_table("offer_feed")
    op.drop_table("offers")
