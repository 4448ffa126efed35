"""node_checkout: the importer's checkouts (with their idempotency), import ledger and compensation outbox.

Revision ID: node_checkout_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "node_checkout_0001"
down_revision = None
branch_labels = ("node_checkout",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "checkouts",
        sa.Column("checkout_id", sa.String(40), primary_key=True),
        sa.Column("caller", sa.String(200), nullable=False),
        sa.Column("idem_key", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("imported_offer_id", sa.String(200), nullable=False),
        sa.Column("exporter_wl", sa.String(63), nullable=False),
        sa.Column("source_offer_id", sa.String(128), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("buyer_reference", sa.String(128), nullable=False),
        sa.Column("source_currency", sa.String(16), nullable=False),
        sa.Column("source_unit_price", sa.String(40), nullable=False),
        sa.Column("fx_version", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("total", sa.String(48), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False, server_default=""),
        sa.Column("order_id", sa.String(40), nullable=True),
        sa.Column("order_key", sa.String(128), nullable=False),
        sa.Column("policy_version", sa.BigInteger, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("caller", "idem_key", name="uq_checkouts_caller_key"),
    )
    op.create_index("ix_checkouts_status_updated", "checkouts", ["status", "updated_at"])
    op.create_table(
        "import_ledger",
        sa.Column("entry_id", sa.String(40), primary_key=True),
        sa.Column("checkout_id", sa.String(40), nullable=False, unique=True),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("exporter_wl", sa.String(63), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("amount", sa.String(48), nullable=False),
        sa.Column("source_currency", sa.String(16), nullable=False),
        sa.Column("source_amount", sa.String(48), nullable=False),
        sa.Column("fx_version", sa.BigInteger, nullable=False),
        sa.Column("policy_version", sa.BigInteger, nullable=False),
        sa.Column("buyer_reference", sa.String(128), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "compensations",
        sa.Column("checkout_id", sa.String(40), primary_key=True),
        sa.Column("exporter_wl", sa.String(63), nullable=False),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("cancel_key", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(200), nullable=False, server_default=""),
        _ts("next_attempt_at"),
        _ts("acknowledged_at", nullable=True),
        _ts("created_at"),
    )
    op.create_index("ix_compensations_pending", "compensations", ["acknowledged_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("compensations")
    op.drop_table("import_ledger")
    op.drop_table("checkouts")
