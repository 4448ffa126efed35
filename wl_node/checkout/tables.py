"""SQLAlchemy Core tables of the importer's checkout flow (schema: the ``node_checkout`` Alembic branch).

``checkouts`` doubles as the idempotency record of the local Checkout RPC: unique per (caller, key), with the
request fingerprint, and its PENDING row is committed before the exporter is called.
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

PENDING, COMPLETED, FAILED, CANCELLED = "PENDING", "COMPLETED", "FAILED", "CANCELLED"
BUYER_REFERENCE_AAD = "checkouts.buyer_reference"
"""Associated data of the encrypted buyer reference (``xwl_runtime.fieldcrypt``), in ``checkouts`` and in the
``import_ledger`` copy alike (the sale copies the stored value)."""

checkouts = sa.Table(
    "checkouts",
    metadata,
    sa.Column("checkout_id", sa.String(40), primary_key=True),
    sa.Column("caller", sa.String(200), nullable=False),
    sa.Column("idem_key", sa.String(128), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("imported_offer_id", sa.String(200), nullable=False),
    sa.Column("exporter_wl", sa.String(63), nullable=False),
    sa.Column("source_offer_id", sa.String(128), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("buyer_reference", sa.Text, nullable=False),  # encrypted
    sa.Column("source_currency", sa.String(16), nullable=False),
    sa.Column("source_unit_price", sa.String(40), nullable=False),
    sa.Column("fx_version", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("total", sa.String(48), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("order_id", sa.String(40), nullable=True),
    sa.Column("order_key", sa.String(128), nullable=False),
    sa.Column("policy_version", sa.BigInteger, nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

import_ledger = sa.Table(
    "import_ledger",
    metadata,
    sa.Column("entry_id", sa.String(40), primary_key=True),
    sa.Column("checkout_id", sa.String(40), nullable=False, unique=True),
    sa.Column("order_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("exporter_wl", sa.String(63), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("amount", sa.String(48), nullable=False),
    sa.Column("source_currency", sa.String(16), nullable=False),
    sa.Column("source_amount", sa.String(48), nullable=False),
    sa.Column("fx_version", sa.BigInteger, nullable=False),
    sa.Column("policy_version", sa.BigInteger, nullable=False),
    sa.Column("buyer_reference", sa.Text, nullable=False),  # encrypted
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
"""The local sale of a confirmed import (one per completed checkout)."""

compensations = sa.Table(
    "compensations",
    metadata,
    sa.Column("checkout_id", sa.String(40), primary_key=True),
    sa.Column("exporter_wl", sa.String(63), nullable=False),
    sa.Column("order_id", sa.String(40), nullable=False),
    sa.Column("cancel_key", sa.String(128), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.String(200), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("acknowledged_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
"""Durable outbox of CancelOrder calls owed to exporters, delivered until acknowledged."""
