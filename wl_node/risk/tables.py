"""Tables of the node's risk enforcer (schema: the ``node_risk`` Alembic branch, revisions 0001 and 0002)."""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

CURSOR = "signals"

signal_cursor = sa.Table(
    "risk_signal_cursor",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("after_sequence", sa.BigInteger, nullable=False),
    sa.Column("contact_at", UtcDateTime, nullable=True),
)
"""The last applied signal sequence (resume point of WatchSignals) and the last contact with the signal stream."""

directions = sa.Table(
    "risk_directions",
    metadata,
    sa.Column("exporter_wl", sa.String(63), primary_key=True),
    sa.Column("importer_wl", sa.String(63), primary_key=True),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("signal_id", sa.String(64), nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(512), nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("effective_at", UtcDateTime, nullable=False),
)
"""The latest signal applied per direction (disabled or re-enabled) and when it took effect here."""

pair_status = sa.Table(
    "risk_pair_status",
    metadata,
    sa.Column("wl_a", sa.String(63), primary_key=True),
    sa.Column("wl_b", sa.String(63), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("policy_version", sa.BigInteger, nullable=False),
    sa.Column("signal_id", sa.String(64), nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(512), nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("effective_at", UtcDateTime, nullable=False),
)
"""The newest PAIR_STATUS signal applied per pair {wl_a, wl_b} (by policy version) and when it took effect here."""
