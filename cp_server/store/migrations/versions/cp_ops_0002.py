"""ops: the SLO figures in breach (one row per figure and scope; its opening queues the slo.breach webhook event)

Revision ID: cp_ops_0002
Revises: cp_ops_0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_ops_0002"
down_revision = "cp_ops_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slo_breaches",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(130), primary_key=True),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("value", sa.String(32), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("slo_breaches")
