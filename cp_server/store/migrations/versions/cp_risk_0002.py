"""risk: pair status signals (a pair's ACTIVE/PAUSED/BLOCKED change carried on the signal path)

Revision ID: cp_risk_0002
Revises: cp_risk_0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_risk_0002"
down_revision = "cp_risk_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("risk_signals") as batch:
        batch.add_column(sa.Column("pair_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("policy_version", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("risk_signals") as batch:
        batch.drop_column("policy_version")
        batch.drop_column("pair_status")
