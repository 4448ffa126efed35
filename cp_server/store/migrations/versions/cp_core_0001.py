"""cp core: WL registry, pairs, directions, cp_state, policy versions, node status, audit log

Revision ID: cp_core_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_core_0001"
down_revision = None
branch_labels = ("cp_core",)
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "white_labels",
        sa.Column("wl_id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("currency_decimals", sa.Integer, nullable=False),
        sa.Column("reference_rate", sa.String(64), nullable=False),
        sa.Column("trader_endpoint", sa.String(300), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("changed_version", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pairs",
        sa.Column("wl_a", sa.String(63), sa.ForeignKey("white_labels.wl_id"), primary_key=True),
        sa.Column("wl_b", sa.String(63), sa.ForeignKey("white_labels.wl_id"), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("imbalance_limit", sa.String(64), nullable=False),
        sa.Column("fx_rate", sa.String(64), nullable=False),
        sa.Column("fx_version", sa.BigInteger, nullable=False),
        sa.Column("imports_frozen", sa.Boolean, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("changed_version", sa.BigInteger, nullable=False),
        sa.CheckConstraint("wl_a < wl_b", name="ck_pairs_ordered"),
    )
    op.create_table(
        "directions",
        sa.Column("exporter", sa.String(63), sa.ForeignKey("white_labels.wl_id"), primary_key=True),
        sa.Column("importer", sa.String(63), sa.ForeignKey("white_labels.wl_id"), primary_key=True),
        sa.Column("import_enabled", sa.Boolean, nullable=False),
        sa.Column("destination_visible", sa.Boolean, nullable=False),
        sa.Column("export_delay_s", sa.Integer, nullable=False),
        sa.Column("changed_version", sa.BigInteger, nullable=False),
    )
    cp_state = op.create_table(
        "cp_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("policy_version", sa.BigInteger, nullable=False),
        sa.Column("audit_seq", sa.BigInteger, nullable=False),
        sa.Column("audit_head", sa.String(64), nullable=False),
    )
    op.bulk_insert(cp_state, [{"id": 1, "policy_version": 0, "audit_seq": 0, "audit_head": "0" * 64}])
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("committed_at", _TS, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
    )
    op.create_table(
        "node_status",
        sa.Column("wl_id", sa.String(63), primary_key=True),
        sa.Column("applied_version", sa.BigInteger, nullable=False),
        sa.Column("rejected_version", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("apply_time", _TS, nullable=True),
        sa.Column("report_time", _TS, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("create_time", _TS, nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("before_json", sa.Text, nullable=False),
        sa.Column("after_json", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("audit_log", "node_status", "policy_versions", "cp_state", "directions", "pairs", "white_labels"):
        op.drop_table(name)
