"""node_risk: the latest PAIR_STATUS signal applied per pair (a pair's status reaching the enforcer by signal).

Revision ID: node_risk_0002
Revises: node_risk_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "node_risk_0002"
down_revision = "node_risk_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_pair_status",
        sa.Column("wl_a", sa.String(63), primary_key=True),
        sa.Column("wl_b", sa.String(63), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("policy_version", sa.BigInteger, nullable=False),
        sa.Column("signal_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("risk_pair_status")
