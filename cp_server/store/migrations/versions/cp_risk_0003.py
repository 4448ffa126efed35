"""risk: offer digests pushed by the nodes (the reverse-direction offers of a compensation plan)

Revision ID: cp_risk_0003
Revises: cp_risk_0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_risk_0003"
down_revision = "cp_risk_0002"
branch_labels = None
depends_on = None

WL = sa.String(63)


def upgrade() -> None:
    op.create_table(
        "risk_offer_digests",
        sa.Column("exporter_wl", WL, primary_key=True),
        sa.Column("destination_wl", WL, primary_key=True),
        sa.Column("generate_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offer_count", sa.Integer(), nullable=False),
        sa.Column("offers", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("risk_offer_digests")
