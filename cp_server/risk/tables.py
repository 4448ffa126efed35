"""Tables of the risk feature (ingest, balances, thresholds, signals, reconciliation) in their own MetaData.

Migrated by the ``cp_risk`` Alembic branch (``cp_server/store/migrations/versions/cp_risk_0001.py``). Decimal
values are stored as plain decimal strings (``format(d, "f")``): SQLite has no exact decimal type, and every sum
is done in Python with ``decimal.Decimal`` so both backends give the same digits.

* ``risk_events``           every accepted signed event, with its payload and signature (verifiable later)
* ``risk_orders``           one row per order: its export value in the reference unit and lifecycle times
* ``risk_balances``         per unordered pair: exports each way, threshold level, automatic disable
* ``risk_balance_points``   net_delta after each ingest batch, for the trend
* ``risk_alerts``           one row per alert episode
* ``risk_signals``          every DISABLE/ENABLE/PAIR_STATUS signal, with a gap-free sequence (``risk_signal_seq``)
* ``risk_signal_acks``      when a node's enforcement of a signal took effect
* ``risk_direction_state``  whether a direction is currently disabled, and by whom
* ``risk_ingest_counters``  accepted / duplicate / refused events per WL and reason
* ``risk_discrepancies``    orders whose two sides disagree (missing past the grace period, amounts, one-sided
                            cancellation), and security findings (an event id re-sent with another payload)
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

WL = sa.String(63)
ID = sa.String(128)
DEC = sa.String(96)


events = sa.Table(
    "risk_events",
    metadata,
    sa.Column("event_id", ID, primary_key=True),  # the dedupe key: INSERT … ON CONFLICT DO NOTHING
    sa.Column("wl_id", WL, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("order_id", ID, nullable=False),
    sa.Column("exporter_wl", WL, nullable=False),
    sa.Column("importer_wl", WL, nullable=False),
    sa.Column("wl_a", WL, nullable=False),
    sa.Column("wl_b", WL, nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("amount", DEC, nullable=False),
    sa.Column("reference_value", DEC, nullable=False),  # amount × exporter's reference_rate at receipt; "" if none
    sa.Column("correlation_id", ID, nullable=False),
    sa.Column("occur_time", UtcDateTime(), nullable=True),
    sa.Column("node_sequence", sa.BigInteger(), nullable=False),
    sa.Column("signal_id", ID, nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("signer_sha256", sa.String(64), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("signature", sa.LargeBinary(), nullable=False),
    sa.Column("quantity", sa.BigInteger(), nullable=False),  # cp_risk_0004
    # No secondary index: the hot path only probes event_id; per-order state lives in risk_orders.
)

orders = sa.Table(
    "risk_orders",
    metadata,
    sa.Column("order_id", ID, primary_key=True),
    sa.Column("exporter_wl", WL, nullable=False),
    sa.Column("importer_wl", WL, nullable=False),
    sa.Column("wl_a", WL, nullable=False),
    sa.Column("wl_b", WL, nullable=False),
    sa.Column("correlation_id", ID, nullable=False),
    sa.Column("first_seen_at", UtcDateTime(), nullable=False),
    sa.Column("export_event_id", ID, nullable=True),
    sa.Column("export_value", DEC, nullable=True),
    sa.Column("confirmed_at", UtcDateTime(), nullable=True),
    sa.Column("finalize_event_id", ID, nullable=True),
    sa.Column("finalized_at", UtcDateTime(), nullable=True),
    sa.Column("cancelled_at", UtcDateTime(), nullable=True),  # the exporter's ORDER_CANCELLED
    # cp_risk_0004: both sides of the order and how it counts (see ledger)
    sa.Column("export_amount", DEC, nullable=True),
    sa.Column("export_quantity", sa.BigInteger(), nullable=True),
    sa.Column("import_amount", DEC, nullable=True),
    sa.Column("import_quantity", sa.BigInteger(), nullable=True),
    sa.Column("compensated_at", UtcDateTime(), nullable=True),  # the importer's COMPENSATION
    sa.Column("settled_at", UtcDateTime(), nullable=True),  # the grace period ended without agreement
    sa.Column("counted", sa.Boolean(), nullable=False),  # the order's value is in the balance now
    sa.Column("agreement", sa.String(16), nullable=True),  # AGREED | MISMATCH once both sides reported
    sa.Index("ix_risk_orders_open", "finalized_at", "cancelled_at", "first_seen_at"),
    sa.Index("ix_risk_orders_unsettled", "counted", "settled_at", "confirmed_at"),
)

balances = sa.Table(
    "risk_balances",
    metadata,
    sa.Column("wl_a", WL, primary_key=True),
    sa.Column("wl_b", WL, primary_key=True),
    sa.Column("exports_ab", DEC, nullable=False),
    sa.Column("exports_ba", DEC, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),  # OK | ALERT | DISABLED
    sa.Column("limit_used", DEC, nullable=False),  # limit at the last threshold evaluation
    sa.Column("open_alert_id", ID, nullable=True),
    sa.Column("disabled_exporter", WL, nullable=True),  # exporter of the automatically disabled direction
    sa.Column("event_count", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

balance_points = sa.Table(
    "risk_balance_points",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("wl_a", WL, nullable=False),
    sa.Column("wl_b", WL, nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("net", DEC, nullable=False),
    sa.Index("ix_risk_balance_points_pair_at", "wl_a", "wl_b", "at"),
)

alerts = sa.Table(
    "risk_alerts",
    metadata,
    sa.Column("alert_id", ID, primary_key=True),
    sa.Column("wl_a", WL, nullable=False),
    sa.Column("wl_b", WL, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),  # highest level reached in the episode
    sa.Column("utilisation", DEC, nullable=False),  # when raised
    sa.Column("correlation_id", ID, nullable=False),
    sa.Column("event_id", ID, nullable=False),
    sa.Column("raise_time", UtcDateTime(), nullable=False),
    sa.Column("open", sa.Boolean(), nullable=False),
    sa.Column("close_time", UtcDateTime(), nullable=True),
    sa.Column("reason", sa.String(64), nullable=False, server_default="THRESHOLD"),  # or a discrepancy reason
)

signal_seq = sa.Table(
    "risk_signal_seq",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("value", sa.BigInteger(), nullable=False),
)

signals = sa.Table(
    "risk_signals",
    metadata,
    sa.Column("sequence", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("signal_id", ID, nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),  # DISABLE | ENABLE | PAIR_STATUS
    sa.Column("source", sa.String(16), nullable=False),  # AUTOMATIC | OPERATOR | POLICY
    sa.Column("exporter_wl", WL, nullable=False),
    sa.Column("importer_wl", WL, nullable=False),
    sa.Column("wl_a", WL, nullable=False),
    sa.Column("wl_b", WL, nullable=False),
    sa.Column("reason", sa.String(512), nullable=False),
    sa.Column("correlation_id", ID, nullable=False),
    sa.Column("issue_time", UtcDateTime(), nullable=False),
    sa.Column("plan_required", DEC, nullable=True),
    sa.Column("plan_offers", sa.Text(), nullable=False),  # JSON list of {offer_id, reference_value}
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("trigger_event_id", ID, nullable=True),
    sa.Column("trigger_received_at", UtcDateTime(), nullable=True),  # CP receipt of the crossing event
    sa.Column("pair_status", sa.String(16), nullable=True),  # PAIR_STATUS only: ACTIVE | PAUSED | BLOCKED
    sa.Column("policy_version", sa.BigInteger(), nullable=True),  # PAIR_STATUS only (cp_risk_0002)
    sa.Index("ix_risk_signals_exporter", "exporter_wl", "sequence"),
    sa.Index("ix_risk_signals_importer", "importer_wl", "sequence"),
)

signal_acks = sa.Table(
    "risk_signal_acks",
    metadata,
    sa.Column("signal_id", ID, primary_key=True),
    sa.Column("wl_id", WL, primary_key=True),
    sa.Column("effective_time", UtcDateTime(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("via", sa.String(16), nullable=False),  # "rpc" (AckSignal) | "event" (ENFORCEMENT_ACK)
)

direction_state = sa.Table(
    "risk_direction_state",
    metadata,
    sa.Column("exporter_wl", WL, primary_key=True),
    sa.Column("importer_wl", WL, primary_key=True),
    sa.Column("disabled", sa.Boolean(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("signal_id", ID, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

ingest_counters = sa.Table(
    "risk_ingest_counters",
    metadata,
    sa.Column("wl_id", WL, primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),  # ACCEPTED, DUPLICATE or a refusal reason
    sa.Column("count", sa.BigInteger(), nullable=False),
)

discrepancies = sa.Table(
    "risk_discrepancies",
    metadata,
    sa.Column("order_id", ID, primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("exporter_wl", WL, nullable=False),
    sa.Column("importer_wl", WL, nullable=False),
    sa.Column("correlation_id", ID, nullable=False),
    sa.Column("detect_time", UtcDateTime(), nullable=False),
    sa.Column("resolved_at", UtcDateTime(), nullable=True),
    # cp_risk_0004
    sa.Column("category", sa.String(16), nullable=False, server_default="RECONCILIATION"),  # or SECURITY
    sa.Column("export_amount", DEC, nullable=True),
    sa.Column("import_amount", DEC, nullable=True),
    sa.Column("export_quantity", sa.BigInteger(), nullable=True),
    sa.Column("import_quantity", sa.BigInteger(), nullable=True),
    sa.Column("disputed_value", DEC, nullable=True),
    sa.Column("event_id", ID, nullable=True),  # SECURITY: the conflicting event id
    sa.Column("reporter_wl", WL, nullable=True),  # SECURITY: whose node sent it
    sa.Column("acted_at", UtcDateTime(), nullable=True),  # when the alert (and pause, if any) was raised
    sa.Column("alert_id", ID, nullable=True),  # the alert raised for it (closed when the discrepancy resolves)
)
