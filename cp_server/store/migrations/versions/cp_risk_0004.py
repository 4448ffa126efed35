"""risk: both sides of an order (amounts, quantities, importer's compensation, grace settlement), richer
discrepancies (category, amounts, disputed value, conflicting event) and the reason of an alert

Revision ID: cp_risk_0004
Revises: cp_risk_0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "cp_risk_0004"
down_revision = "cp_risk_0003"
branch_labels = None
depends_on = None

WL = sa.String(63)
ID = sa.String(128)
DEC = sa.String(96)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("risk_events", sa.Column("quantity", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("risk_orders") as batch:
        batch.add_column(sa.Column("export_amount", DEC, nullable=True))
        batch.add_column(sa.Column("export_quantity", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("import_amount", DEC, nullable=True))
        batch.add_column(sa.Column("import_quantity", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("compensated_at", TS, nullable=True))
        batch.add_column(sa.Column("settled_at", TS, nullable=True))
        batch.add_column(sa.Column("counted", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("agreement", sa.String(16), nullable=True))
    _settle_existing_orders()
    op.create_index("ix_risk_orders_unsettled", "risk_orders", ["counted", "settled_at", "confirmed_at"])
    with op.batch_alter_table("risk_discrepancies") as batch:
        batch.add_column(sa.Column("category", sa.String(16), nullable=False, server_default="RECONCILIATION"))
        batch.add_column(sa.Column("export_amount", DEC, nullable=True))
        batch.add_column(sa.Column("import_amount", DEC, nullable=True))
        batch.add_column(sa.Column("export_quantity", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("import_quantity", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("disputed_value", DEC, nullable=True))
        batch.add_column(sa.Column("event_id", ID, nullable=True))
        batch.add_column(sa.Column("reporter_wl", WL, nullable=True))
        batch.add_column(sa.Column("acted_at", TS, nullable=True))
        batch.add_column(sa.Column("alert_id", ID, nullable=True))
    with op.batch_alter_table("risk_alerts") as batch:
        batch.add_column(sa.Column("reason", sa.String(64), nullable=False, server_default="THRESHOLD"))


def _settle_existing_orders() -> None:
    """Orders stored under the previous rule counted from their confirmation: mark them settled (with the
    same CP marker event the reconciler writes, so the recomputation keeps matching the stored balances)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT order_id, exporter_wl, importer_wl, wl_a, wl_b, correlation_id, confirmed_at, cancelled_at "
        "FROM risk_orders WHERE export_event_id IS NOT NULL")).mappings().all()
    for r in rows:
        bind.execute(sa.text(
            "INSERT INTO risk_events (event_id, wl_id, kind, order_id, exporter_wl, importer_wl, wl_a, wl_b, "
            "currency, amount, reference_value, correlation_id, occur_time, node_sequence, signal_id, received_at, "
            "signer_sha256, payload, signature, quantity) VALUES (:event_id, '', 'GRACE_EXPIRED', :order_id, "
            ":exporter_wl, :importer_wl, :wl_a, :wl_b, '', '', '', :correlation_id, NULL, 0, '', :received_at, '', "
            ":empty, :empty, 0)"),
            {**r, "event_id": "cp-grace-" + hashlib.sha256(r["order_id"].encode()).hexdigest()[:40],
             "received_at": r["confirmed_at"], "empty": b""})
        bind.execute(sa.text("UPDATE risk_orders SET settled_at = :at, counted = :counted WHERE order_id = :order_id"),
                     {"at": r["confirmed_at"], "counted": r["cancelled_at"] is None, "order_id": r["order_id"]})


def downgrade() -> None:
    with op.batch_alter_table("risk_alerts") as batch:
        batch.drop_column("reason")
    with op.batch_alter_table("risk_discrepancies") as batch:
        for name in ("alert_id", "acted_at", "reporter_wl", "event_id", "disputed_value", "import_quantity",
                     "export_quantity", "import_amount", "export_amount", "category"):
            batch.drop_column(name)
    op.drop_index("ix_risk_orders_unsettled", table_name="risk_orders")
    with op.batch_alter_table("risk_orders") as batch:
        for name in ("agreement", "counted", "settled_at", "compensated_at", "import_quantity", "import_amount",
                     "export_quantity", "export_amount"):
            batch.drop_column(name)
    op.drop_column("risk_events", "quantity")
