"""node_risk: the enforcer's persisted signal cursor and per-direction disabled state.

Revision ID: node_risk_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "node_risk_0001"
down_revision = None
branch_labels = ("node_risk",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "risk_signal_cursor",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("after_sequence", sa.BigInteger, nullable=False),
        _ts("contact_at", nullable=True),
    )
    op.create_table(
        "risk_directions",
        sa.Column("exporter_wl", sa.String(63), primary_key=True),
        sa.Column("importer_wl", sa.String(63), primary_key=True),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("signal_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        _ts("effective_at"),
    )


def downgrade() -> None:
    op.drop_table("risk_directions")
    op.drop_table("risk_signal_cursor")
