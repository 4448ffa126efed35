"""SQLAlchemy Core tables of the exporter's order desk and of the node's ledger-event outbox.

The schema is created by the ``node_orders`` Alembic branch (``wl_node/store/migrations/versions``); these
definitions mirror it for queries. Money amounts are decimal strings (exact on every backend); times are
timezone-aware UTC through ``UtcDateTime``.
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()


order_idempotency = sa.Table(
    "order_idempotency",
    metadata,
    sa.Column("caller", sa.String(200), primary_key=True),
    sa.Column("method", sa.String(64), primary_key=True),
    sa.Column("idem_key", sa.String(128), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("order_id", sa.String(40), nullable=True),
    sa.Column("response", sa.LargeBinary, nullable=True),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.String(40), primary_key=True),
    sa.Column("importer_wl", sa.String(63), nullable=False),
    sa.Column("exporter_wl", sa.String(63), nullable=False),
    sa.Column("idem_key", sa.String(128), nullable=False),
    sa.Column("offer_id", sa.String(128), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("unit_price", sa.String(40), nullable=False),
    sa.Column("total", sa.String(48), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("policy_version", sa.BigInteger, nullable=False),
    sa.Column("fx_version", sa.BigInteger, nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

order_ledger = sa.Table(
    "order_ledger",
    metadata,
    sa.Column("entry_id", sa.String(40), primary_key=True),
    sa.Column("order_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("counterparty_wl", sa.String(63), nullable=False),
    sa.Column("offer_id", sa.String(128), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("amount", sa.String(48), nullable=False),
    sa.Column("policy_version", sa.BigInteger, nullable=False),
    sa.Column("fx_version", sa.BigInteger, nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

ledger_outbox = sa.Table(
    "ledger_outbox",
    metadata,
    sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(40), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("order_id", sa.String(40), nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("shipped_at", UtcDateTime, nullable=True),
)
"""Ledger events (serialized ``xporty.cp.v1.LedgerEvent``, unsigned) waiting to be shipped to the CP.

Written in the same transaction as the fact they report; the risk feature's shipper signs them with the node's
current key, sends them in ``sequence`` order and sets ``shipped_at``.
"""
