"""rollup: hourly and monthly trade per pair (exports, amounts, counted orders, views, checkouts, events)

Revision ID: cp_rollup_0001
Revises:
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_rollup_0001"
down_revision = None
branch_labels = ("cp_rollup",)
depends_on = None

DECIMALS = ("exports_ab", "exports_ba", "amount_ab", "amount_ba")
COUNTERS = ("orders_ab", "orders_ba", "views_ab", "views_ba", "checkouts_ab", "checkouts_ba", "events")


def _create(name: str, bucket: str) -> None:
    op.create_table(
        name,
        sa.Column("wl_a", sa.String(63), primary_key=True),
        sa.Column("wl_b", sa.String(63), primary_key=True),
        sa.Column(bucket, sa.DateTime(timezone=True), primary_key=True),
        *(sa.Column(c, sa.String(96), nullable=False) for c in DECIMALS),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in COUNTERS),
    )
    op.create_index(f"ix_{name}_{bucket}", name, [bucket])


def upgrade() -> None:
    _create("rollup_pair_hours", "hour")
    _create("rollup_pair_months", "month")
    op.create_table(
        "dashboard_links",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("scope_wl", sa.String(63), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "dashboard_sessions",
        sa.Column("session_sha256", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("scope_wl", sa.String(63), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
    op.drop_table("dashboard_links")
    op.drop_index("ix_rollup_pair_months_month", "rollup_pair_months")
    op.drop_table("rollup_pair_months")
    op.drop_index("ix_rollup_pair_hours_hour", "rollup_pair_hours")
    op.drop_table("rollup_pair_hours")
