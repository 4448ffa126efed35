"""Tables of the CP core (WL registry, pair policies, versions, node status, audit log) on one ``metadata``.

Created by the ``cp_core`` Alembic branch (``migrations/versions/cp_core_0001.py`` and later revisions); keep the
two in step.

Decimals (reference rates, FX rates, limits) are stored as normalized decimal TEXT: exact on every backend
(SQLite's NUMERIC would go through a float) and compared only in Python as ``Decimal``.
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

CP_STATE_ID = 1
GENESIS_HASH = "0" * 64

white_labels = sa.Table(
    "white_labels",
    metadata,
    sa.Column("wl_id", sa.String(63), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("currency_decimals", sa.Integer, nullable=False),
    sa.Column("reference_rate", sa.String(64), nullable=False),
    sa.Column("trader_endpoint", sa.String(300), nullable=False),
    # Operator-set DNS names of the WL node's certificate, space-separated (host names hold no spaces).
    sa.Column("dns_names", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("changed_version", sa.BigInteger, nullable=False),
)

# One row per unordered pair, wl_a < wl_b. fx_rate = units of wl_b's currency per one unit of wl_a's.
pairs = sa.Table(
    "pairs",
    metadata,
    sa.Column("wl_a", sa.String(63), sa.ForeignKey("white_labels.wl_id"), primary_key=True),
    sa.Column("wl_b", sa.String(63), sa.ForeignKey("white_labels.wl_id"), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("imbalance_limit", sa.String(64), nullable=False),
    sa.Column("fx_rate", sa.String(64), nullable=False),
    sa.Column("fx_version", sa.BigInteger, nullable=False),
    sa.Column("imports_frozen", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("changed_version", sa.BigInteger, nullable=False),
    sa.CheckConstraint("wl_a < wl_b", name="ck_pairs_ordered"),
)

# Two rows per pair: (wl_a -> wl_b) and (wl_b -> wl_a).
directions = sa.Table(
    "directions",
    metadata,
    sa.Column("exporter", sa.String(63), sa.ForeignKey("white_labels.wl_id"), primary_key=True),
    sa.Column("importer", sa.String(63), sa.ForeignKey("white_labels.wl_id"), primary_key=True),
    sa.Column("import_enabled", sa.Boolean, nullable=False),
    sa.Column("destination_visible", sa.Boolean, nullable=False),
    sa.Column("export_delay_s", sa.Integer, nullable=False),
    sa.Column("changed_version", sa.BigInteger, nullable=False),
)

# Exactly one row (id = 1). Every change transaction starts by bumping policy_version here, which takes the
# row lock: change transactions (and audit appends) of every replica are serialized on it, so versions are
# gapless, monotonic across restarts, and the audit chain never forks.
cp_state = sa.Table(
    "cp_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("policy_version", sa.BigInteger, nullable=False),
    sa.Column("audit_seq", sa.BigInteger, nullable=False),
    sa.Column("audit_head", sa.String(64), nullable=False),
)

# When each policy version was committed (drift = now - commit time of the oldest version a node lacks).
policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("committed_at", UtcDateTime, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
)

node_status = sa.Table(
    "node_status",
    metadata,
    sa.Column("wl_id", sa.String(63), primary_key=True),
    sa.Column("applied_version", sa.BigInteger, nullable=False),
    sa.Column("rejected_version", sa.BigInteger, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("apply_time", UtcDateTime, nullable=True),
    sa.Column("report_time", UtcDateTime, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("create_time", UtcDateTime, nullable=False),
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
