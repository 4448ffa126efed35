"""Idempotency records of the exporter's mutating RPCs, as Stripe and AIP-155 describe them.

One row per (caller identity, method, key) with a SHA-256 fingerprint of the request. The row is inserted in the
same transaction as the effect, so it is either committed together with the order (and its stored response) or
not at all:

* same key, same request → the stored response, byte for byte;
* same key, other request → INVALID_ARGUMENT, reason ``IDEMPOTENCY_KEY_REUSED``;
* concurrent duplicates → exactly one effect. PostgreSQL: ``INSERT … ON CONFLICT DO NOTHING`` waits for the
  transaction holding the conflicting key and then sees its committed row. SQLite: ``BEGIN IMMEDIATE`` serializes
  writers, so the second one simply finds the row;
* a request refused by validation or authentication never reaches this point: nothing is stored.

Retention: rows live ``retention`` (default 48 h, never less than 24 h) and are then purged by
``purge_expired``; the orders themselves are kept, so GetOrder by key still serves reconciliation afterwards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.dialects import postgresql, sqlite

from xwl_runtime.errors import InvalidArgument

from .tables import order_idempotency

MIN_RETENTION = dt.timedelta(hours=24)
DEFAULT_RETENTION = dt.timedelta(hours=48)
MAX_KEY_CHARS = 128


def fingerprint(request: Message, *, key_field: str = "idempotency_key") -> str:
    """SHA-256 of the request without its key (deterministic serialization)."""
    clone = type(request)()
    clone.CopyFrom(request)
    clone.ClearField(key_field)  # type: ignore[arg-type]
    return hashlib.sha256(clone.SerializeToString(deterministic=True)).hexdigest()


def check_key(key: str, field: str = "idempotency_key") -> None:
    """INVALID_ARGUMENT unless ``key`` has 1..128 printable characters."""
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise InvalidArgument.field(field, f"must be 1..{MAX_KEY_CHARS} printable characters")


@dataclass(frozen=True)
class Replay:
    """A stored outcome for the key."""

    order_id: str | None
    response: bytes | None


_t = order_idempotency.c
_KEY = (_t.caller == sa.bindparam("b_caller"), _t.method == sa.bindparam("b_method"),
        _t.idem_key == sa.bindparam("b_key"))
# Built once per dialect: INSERT … ON CONFLICT DO NOTHING is the claim on both backends.
_CLAIM = {
    # RETURNING tells whether the row was inserted (rowcount of INSERT is not reliable on every driver).
    name: insert(order_idempotency).on_conflict_do_nothing(index_elements=["caller", "method", "idem_key"])
    .returning(order_idempotency.c.idem_key)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_LOOKUP = sa.select(_t.fingerprint, _t.order_id, _t.response).where(*_KEY)
_COMPLETE = (
    sa.update(order_idempotency).where(*_KEY)
    .values(order_id=sa.bindparam("b_order_id"), response=sa.bindparam("b_response"))
)


class IdempotencyRecords:
    """Claim, complete and purge idempotency rows inside the caller's transaction."""

    def __init__(self, retention: dt.timedelta = DEFAULT_RETENTION) -> None:
        if retention < MIN_RETENTION:
            raise ValueError(f"idempotency retention must be at least {MIN_RETENTION}")
        self.retention = retention

    def claim(
        self,
        conn: sa.Connection,
        *,
        caller: str,
        method: str,
        key: str,
        fingerprint: str,
        correlation_id: str,
        now: dt.datetime,
    ) -> Replay | None:
        """None when this transaction now owns the key; the stored outcome when the key was used before."""
        values = dict(caller=caller, method=method, idem_key=key, fingerprint=fingerprint,
                      correlation_id=correlation_id, created_at=now, expires_at=now + self.retention)
        if conn.execute(_CLAIM[conn.dialect.name], values).first() is not None:
            return None
        row = conn.execute(_LOOKUP, {"b_caller": caller, "b_method": method, "b_key": key}).one()
        if row.fingerprint != fingerprint:
            raise InvalidArgument(
                "idempotency_key was already used with a different request",
                reason="IDEMPOTENCY_KEY_REUSED",
                metadata={"field": "idempotency_key"},
            )
        return Replay(order_id=row.order_id, response=row.response)

    def complete(
        self, conn: sa.Connection, *, caller: str, method: str, key: str, order_id: str, response: bytes
    ) -> None:
        """Store the outcome of the claimed key (same transaction as the effect)."""
        conn.execute(_COMPLETE, {"b_caller": caller, "b_method": method, "b_key": key,
                                 "b_order_id": order_id, "b_response": response})

    @staticmethod
    def purge_expired(conn: sa.Connection, now: dt.datetime) -> int:
        """Delete every row whose retention ended; returns how many."""
        result = conn.execute(sa.delete(order_idempotency).where(order_idempotency.c.expires_at < now))
        return int(result.rowcount or 0)
