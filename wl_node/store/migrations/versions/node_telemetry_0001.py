"""node_telemetry: the durable queue of signed ledger/enforcement events shipped to the CP.

Revision ID: node_telemetry_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "node_telemetry_0001"
down_revision = None
branch_labels = ("node_telemetry",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "telemetry_queue",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _ts("created_at"),
        _ts("sent_at", nullable=True),
    )
    op.create_index("ix_telemetry_queue_state_sequence", "telemetry_queue", ["state", "sequence"])
    counter = op.create_table(
        "telemetry_counter",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(counter, [{"name": "events", "value": 0}])


def downgrade() -> None:
    op.drop_table("telemetry_counter")
    op.drop_table("telemetry_queue")
