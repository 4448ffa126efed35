"""Tables of the webhook feature, migrated by the ``cp_webhooks`` Alembic branch.

* ``webhook_endpoints``   operator endpoints: URL, event filter, signing secret
* ``webhook_deliveries``  the outbox: one row per (event, endpoint) with its attempts, next attempt time and state
                          (PENDING → DELIVERED, or DEAD after the last attempt: the dead letter)
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()
ID = sa.String(64)

endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("webhook_id", ID, primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("event_types", sa.Text(), nullable=False),  # JSON list; [] = every type
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("delivery_id", ID, primary_key=True),
    sa.Column("webhook_id", ID, nullable=False, index=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # PENDING | DELIVERED | DEAD
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
    sa.Column("last_error", sa.String(256), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
)
