"""node_orders: the exporter's order desk (orders, idempotency records, export ledger) and the node's event outbox.

Revision ID: node_orders_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "node_orders_0001"
down_revision = None
branch_labels = ("node_orders",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "order_idempotency",
        sa.Column("caller", sa.String(200), primary_key=True),
        sa.Column("method", sa.String(64), primary_key=True),
        sa.Column("idem_key", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(40), nullable=True),
        sa.Column("response", sa.LargeBinary, nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
    )
    op.create_index("ix_order_idempotency_expires_at", "order_idempotency", ["expires_at"])
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(40), primary_key=True),
        sa.Column("importer_wl", sa.String(63), nullable=False),
        sa.Column("exporter_wl", sa.String(63), nullable=False),
        sa.Column("idem_key", sa.String(128), nullable=False),
        sa.Column("offer_id", sa.String(128), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("unit_price", sa.String(40), nullable=False),
        sa.Column("total", sa.String(48), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False, server_default=""),
        sa.Column("policy_version", sa.BigInteger, nullable=False),
        sa.Column("fx_version", sa.BigInteger, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("importer_wl", "idem_key", name="uq_orders_importer_key"),
    )
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_table(
        "order_ledger",
        sa.Column("entry_id", sa.String(40), primary_key=True),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("counterparty_wl", sa.String(63), nullable=False),
        sa.Column("offer_id", sa.String(128), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("amount", sa.String(48), nullable=False),
        sa.Column("policy_version", sa.BigInteger, nullable=False),
        sa.Column("fx_version", sa.BigInteger, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_order_ledger_order_id", "order_ledger", ["order_id"])
    op.create_table(
        "ledger_outbox",
        sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("event_id", sa.String(40), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        _ts("created_at"),
        _ts("shipped_at", nullable=True),
    )
    op.create_index("ix_ledger_outbox_shipped_at", "ledger_outbox", ["shipped_at"])


def downgrade() -> None:
    op.drop_table("ledger_outbox")
    op.drop_table("order_ledger")
    op.drop_table("orders")
    op.drop_table("order_idempotency")
