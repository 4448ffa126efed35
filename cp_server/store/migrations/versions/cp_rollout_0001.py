"""rollout: feature flags, direction rollout stages, node versions and capabilities

Revision ID: cp_rollout_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_rollout_0001"
down_revision = None
branch_labels = ("cp_rollout",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_flags",
        sa.Column("wl_id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("percent_bp", sa.Integer(), nullable=False),
        sa.Column("default_enabled", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("changed_version", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "rollout_directions",
        sa.Column("exporter", sa.String(63), primary_key=True),
        sa.Column("importer", sa.String(63), primary_key=True),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.String(500), nullable=False),
        sa.Column("pilot", sa.Text(), nullable=False),
        sa.Column("expansion", sa.Text(), nullable=False),
        sa.Column("step_back_on_breach", sa.Boolean(), nullable=False),
        sa.Column("slo_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_version", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "rollout_node_versions",
        sa.Column("wl_id", sa.String(63), primary_key=True),
        sa.Column("software_version", sa.String(64), nullable=False),
        sa.Column("contract_version", sa.String(64), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("report_time", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rollout_node_versions")
    op.drop_table("rollout_directions")
    op.drop_table("rollout_flags")
