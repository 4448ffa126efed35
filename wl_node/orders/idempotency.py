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

from xwl_runtime.errors import Aborted, InvalidArgument

from .rawsql import Sql, db_time, is_sqlite
from .tables import order_idempotency

MIN_RETENTION = dt.timedelta(hours=24)
DEFAULT_RETENTION = dt.timedelta(hours=48)
MAX_KEY_CHARS = 128


def fingerprint(request: Message, *, key_field: str = "idempotency_key") -> str:
    """SHA-256 of the request without its key (deterministic serialization)."""
    clone = type(request)()
    clone.CopyFrom(request)
    clone.ClearField(key_field)
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


_COLUMNS = "caller, method, idem_key, fingerprint, correlation_id, created_at, expires_at"
# INSERT … ON CONFLICT DO NOTHING is the claim on both backends; rowcount (0 or 1) is exact on sqlite3 and psycopg.
_CLAIM = Sql(
    f"INSERT INTO order_idempotency ({_COLUMNS}) VALUES (:caller, :method, :idem_key, :fingerprint, "
    ":correlation_id, :created_at, :expires_at) ON CONFLICT (caller, method, idem_key) DO NOTHING"
)
_WHERE_KEY = "WHERE caller = :caller AND method = :method AND idem_key = :idem_key"
_LOOKUP = Sql(f"SELECT fingerprint, order_id, response FROM order_idempotency {_WHERE_KEY}")
COMPLETE_SET = "UPDATE order_idempotency SET order_id = :order_id, response = :response " + _WHERE_KEY
"""The completion statement's text (``:caller, :method, :idem_key, :order_id, :response``), for combined
statements."""
_COMPLETE = Sql(COMPLETE_SET)
_PURGE = sa.delete(order_idempotency).where(order_idempotency.c.expires_at < sa.bindparam("b_now"))


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
        sqlite_db = is_sqlite(conn)
        values = dict(caller=caller, method=method, idem_key=key, fingerprint=fingerprint,
                      correlation_id=correlation_id, created_at=db_time(sqlite_db, now),
                      expires_at=db_time(sqlite_db, now + self.retention))
        if _CLAIM.run(conn, values).rowcount == 1:
            return None
        row = _LOOKUP.run(conn, {"caller": caller, "method": method, "idem_key": key}).fetchone()
        if row is None:  # only possible if the row was purged between the two statements
            raise Aborted("idempotency record changed concurrently; retry", reason="IDEMPOTENCY_RACE")
        stored_fp, order_id, response = row
        if stored_fp != fingerprint:
            raise InvalidArgument(
                "idempotency_key was already used with a different request",
                reason="IDEMPOTENCY_KEY_REUSED",
                metadata={"field": "idempotency_key"},
            )
        return Replay(order_id=order_id, response=bytes(response) if response is not None else None)

    def complete(
        self, conn: sa.Connection, *, caller: str, method: str, key: str, order_id: str, response: bytes
    ) -> None:
        """Store the outcome of the claimed key (same transaction as the effect)."""
        _COMPLETE.run(conn, {"caller": caller, "method": method, "idem_key": key, "order_id": order_id,
                             "response": response})

    @staticmethod
    def purge_expired(conn: sa.Connection, now: dt.datetime) -> int:
        """Delete every row whose retention ended; returns how many."""
        result = conn.execute(_PURGE, {"b_now": now})
        return int(result.rowcount or 0)
