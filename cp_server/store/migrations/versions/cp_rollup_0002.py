"""rollup: index of a pair's orders by time (the dashboard's recent orders of a pair)

Revision ID: cp_rollup_0002
Revises: cp_rollup_0001
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

revision = "cp_rollup_0002"
down_revision = "cp_rollup_0001"
branch_labels = None
depends_on = "cp_risk_0004"


def upgrade() -> None:
    op.create_index("ix_risk_orders_pair_seen", "risk_orders", ["wl_a", "wl_b", "first_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_risk_orders_pair_seen", "risk_orders")
