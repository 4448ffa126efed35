"""ops: operational telemetry from the nodes (order counters and latency histograms per minute, breakers, sync lag)

Revision ID: cp_ops_0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_ops_0001"
down_revision = None
branch_labels = ("cp_ops",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_peer_minutes",
        sa.Column("importer_wl", sa.String(63), primary_key=True),
        sa.Column("exporter_wl", sa.String(63), primary_key=True),
        sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("confirmed", sa.BigInteger(), nullable=False),
        sa.Column("denied", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("buckets", sa.Text(), nullable=False),
    )
    op.create_table(
        "ops_breaker_transitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("importer_wl", sa.String(63), nullable=False),
        sa.Column("exporter_wl", sa.String(63), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(128), nullable=False),
    )
    op.create_table(
        "ops_sync_lag",
        sa.Column("importer_wl", sa.String(63), primary_key=True),
        sa.Column("exporter_wl", sa.String(63), primary_key=True),
        sa.Column("lag_seconds", sa.Float(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ops_sync_lag")
    op.drop_table("ops_breaker_transitions")
    op.drop_table("ops_peer_minutes")
