"""risk: signed events, orders, balances, alerts, signals, acks, counters, discrepancies

Revision ID: cp_risk_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_risk_0001"
down_revision = None
branch_labels = ("cp_risk",)
depends_on = None

WL = sa.String(63)
ID = sa.String(128)
DEC = sa.String(96)


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "risk_events",
        sa.Column("event_id", ID, primary_key=True),
        sa.Column("wl_id", WL, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("order_id", ID, nullable=False),
        sa.Column("exporter_wl", WL, nullable=False),
        sa.Column("importer_wl", WL, nullable=False),
        sa.Column("wl_a", WL, nullable=False),
        sa.Column("wl_b", WL, nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("amount", DEC, nullable=False),
        sa.Column("reference_value", DEC, nullable=False),
        sa.Column("correlation_id", ID, nullable=False),
        _ts("occur_time", nullable=True),
        sa.Column("node_sequence", sa.BigInteger(), nullable=False),
        sa.Column("signal_id", ID, nullable=False),
        _ts("received_at"),
        sa.Column("signer_sha256", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "risk_orders",
        sa.Column("order_id", ID, primary_key=True),
        sa.Column("exporter_wl", WL, nullable=False),
        sa.Column("importer_wl", WL, nullable=False),
        sa.Column("wl_a", WL, nullable=False),
        sa.Column("wl_b", WL, nullable=False),
        sa.Column("correlation_id", ID, nullable=False),
        _ts("first_seen_at"),
        sa.Column("export_event_id", ID, nullable=True),
        sa.Column("export_value", DEC, nullable=True),
        _ts("confirmed_at", nullable=True),
        sa.Column("finalize_event_id", ID, nullable=True),
        _ts("finalized_at", nullable=True),
        _ts("cancelled_at", nullable=True),
    )
    op.create_index("ix_risk_orders_open", "risk_orders", ["finalized_at", "cancelled_at", "first_seen_at"])
    op.create_table(
        "risk_balances",
        sa.Column("wl_a", WL, primary_key=True),
        sa.Column("wl_b", WL, primary_key=True),
        sa.Column("exports_ab", DEC, nullable=False),
        sa.Column("exports_ba", DEC, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("limit_used", DEC, nullable=False),
        sa.Column("open_alert_id", ID, nullable=True),
        sa.Column("disabled_exporter", WL, nullable=True),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "risk_balance_points",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("wl_a", WL, nullable=False),
        sa.Column("wl_b", WL, nullable=False),
        _ts("at"),
        sa.Column("net", DEC, nullable=False),
    )
    op.create_index("ix_risk_balance_points_pair_at", "risk_balance_points", ["wl_a", "wl_b", "at"])
    op.create_table(
        "risk_alerts",
        sa.Column("alert_id", ID, primary_key=True),
        sa.Column("wl_a", WL, nullable=False),
        sa.Column("wl_b", WL, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("utilisation", DEC, nullable=False),
        sa.Column("correlation_id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        _ts("raise_time"),
        sa.Column("open", sa.Boolean(), nullable=False),
        _ts("close_time", nullable=True),
    )
    op.create_table(
        "risk_signal_seq",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(sa.table("risk_signal_seq", sa.column("id"), sa.column("value")), [{"id": 1, "value": 0}])
    op.create_table(
        "risk_signals",
        sa.Column("sequence", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("signal_id", ID, nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("exporter_wl", WL, nullable=False),
        sa.Column("importer_wl", WL, nullable=False),
        sa.Column("wl_a", WL, nullable=False),
        sa.Column("wl_b", WL, nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("correlation_id", ID, nullable=False),
        _ts("issue_time"),
        sa.Column("plan_required", DEC, nullable=True),
        sa.Column("plan_offers", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("trigger_event_id", ID, nullable=True),
        _ts("trigger_received_at", nullable=True),
    )
    op.create_index("ix_risk_signals_exporter", "risk_signals", ["exporter_wl", "sequence"])
    op.create_index("ix_risk_signals_importer", "risk_signals", ["importer_wl", "sequence"])
    op.create_table(
        "risk_signal_acks",
        sa.Column("signal_id", ID, primary_key=True),
        sa.Column("wl_id", WL, primary_key=True),
        _ts("effective_time"),
        _ts("received_at"),
        sa.Column("via", sa.String(16), nullable=False),
    )
    op.create_table(
        "risk_direction_state",
        sa.Column("exporter_wl", WL, primary_key=True),
        sa.Column("importer_wl", WL, primary_key=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("signal_id", ID, nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "risk_ingest_counters",
        sa.Column("wl_id", WL, primary_key=True),
        sa.Column("reason", sa.String(64), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "risk_discrepancies",
        sa.Column("order_id", ID, primary_key=True),
        sa.Column("reason", sa.String(64), primary_key=True),
        sa.Column("exporter_wl", WL, nullable=False),
        sa.Column("importer_wl", WL, nullable=False),
        sa.Column("correlation_id", ID, nullable=False),
        _ts("detect_time"),
        _ts("resolved_at", nullable=True),
    )


def downgrade() -> None:
    for name in (
        "risk_discrepancies", "risk_ingest_counters", "risk_direction_state", "risk_signal_acks", "risk_signals",
        "risk_signal_seq", "risk_alerts", "risk_balance_points", "risk_balances", "risk_orders", "risk_events",
    ):
        op.drop_table(name)
