"""node_rollout: the exporter's daily order value per importer under a rollout cap.

Revision ID: node_rollout_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "node_rollout_0001"
down_revision = None
branch_labels = ("node_rollout",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_daily_usage",
        sa.Column("importer_wl", sa.String(63), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("used_e8", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rollout_daily_usage")
