"""Tables of operational telemetry, migrated by the ``cp_ops`` Alembic branch.

* ``ops_peer_minutes``        per importer, exporter and minute: order attempts, outcomes and the confirmation
                              latency histogram (bucket counts as JSON, merged by addition)
* ``ops_breaker_transitions`` each circuit state change an importer reported
* ``ops_sync_lag``            the latest catalog sync lag per importer and exporter
* ``slo_breaches``            each SLO figure (per scope) the CP judged in breach, open until it is back on target
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()
WL = sa.String(63)

peer_minutes = sa.Table(
    "ops_peer_minutes",
    metadata,
    sa.Column("importer_wl", WL, primary_key=True),
    sa.Column("exporter_wl", WL, primary_key=True),
    sa.Column("minute", UtcDateTime(), primary_key=True),
    sa.Column("attempts", sa.BigInteger(), nullable=False),
    sa.Column("confirmed", sa.BigInteger(), nullable=False),
    sa.Column("denied", sa.BigInteger(), nullable=False),
    sa.Column("errors", sa.BigInteger(), nullable=False),
    sa.Column("buckets", sa.Text(), nullable=False),  # JSON list of counts, one per LATENCY_BOUNDS_S + one +Inf
)

breaker_transitions = sa.Table(
    "ops_breaker_transitions",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("importer_wl", WL, nullable=False),
    sa.Column("exporter_wl", WL, nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("reason", sa.String(128), nullable=False),
)

sync_lag = sa.Table(
    "ops_sync_lag",
    metadata,
    sa.Column("importer_wl", WL, primary_key=True),
    sa.Column("exporter_wl", WL, primary_key=True),
    sa.Column("lag_seconds", sa.Float(), nullable=False),
    sa.Column("reported_at", UtcDateTime(), nullable=False),
)

breaches = sa.Table(
    "slo_breaches",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(130), primary_key=True),
    sa.Column("open", sa.Boolean(), nullable=False),
    sa.Column("value", sa.String(32), nullable=False),
    sa.Column("target", sa.String(32), nullable=False),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("closed_at", UtcDateTime(), nullable=True),
)
