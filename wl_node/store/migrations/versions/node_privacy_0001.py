"""node_privacy: trader accounts (personal columns encrypted), the contact disclosure log, the subject request
audit, the offers' link to their trader account (exporter) and contact handle (importer), and room for the
encrypted buyer reference.

Revision ID: node_privacy_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "node_privacy_0001"
down_revision = None
branch_labels = ("node_privacy",)
depends_on = ("node_catalog_0001", "node_checkout_0001")


def upgrade() -> None:
    op.create_table(
        "trader_accounts",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("wl_id", sa.String(63), nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("contact_name", sa.Text, nullable=False),
        sa.Column("contact_email", sa.Text, nullable=False),
        sa.Column("contact_phone", sa.Text, nullable=False),
        sa.Column("email_index", sa.String(64), nullable=False),
        sa.Column("handle", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_trader_accounts_email_index", "trader_accounts", ["email_index"])
    op.create_table(
        "contact_disclosures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("handle", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("caller", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "subject_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_index", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("affected", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("offers", sa.Column("trader_account_id", sa.String(64), nullable=False, server_default=""))
    op.add_column("imported_offers", sa.Column("contact_handle", sa.String(64), nullable=False, server_default=""))
    if op.get_bind().dialect.name != "sqlite":  # SQLite does not enforce VARCHAR lengths
        for table in ("checkouts", "import_ledger"):  # the buyer reference is now stored encrypted (longer)
            op.alter_column(table, "buyer_reference", type_=sa.Text, existing_nullable=False)


def downgrade() -> None:
    op.drop_column("imported_offers", "contact_handle")
    op.drop_column("offers", "trader_account_id")
    op.drop_table("subject_requests")
    op.drop_table("contact_disclosures")
    op.drop_table("trader_accounts")
