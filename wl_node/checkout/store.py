"""The checkout's transactions (run in a worker thread by ``TxRunner``): each function is one short transaction
body taking a ``sqlalchemy.Connection``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from wl_node.orders.events import OUTBOX_INSERT, append_event, event_values
from wl_node.orders.rawsql import Sql, db_time, is_sqlite
from xporty.common.v1 import money_pb2
from xporty.cp.v1 import telemetry_pb2
from xporty.node.v1 import storefront_pb2
from xporty.trader.v1 import order_pb2

from .tables import CANCELLED, COMPLETED, FAILED, PENDING, checkouts, compensations, import_ledger

Row = Mapping[str, Any] | sa.RowMapping
"""A ``checkouts`` row: as read (``RowMapping``) or as built here (a dict)."""
_c = checkouts.c
_STATUS = {PENDING: storefront_pb2.CHECKOUT_STATUS_PENDING, COMPLETED: storefront_pb2.CHECKOUT_STATUS_COMPLETED,
           FAILED: storefront_pb2.CHECKOUT_STATUS_FAILED, CANCELLED: storefront_pb2.CHECKOUT_STATUS_CANCELLED}

# Hot-path statements as fixed SQL text on the driver connection (``wl_node.orders.rawsql``): INSERT … ON
# CONFLICT DO NOTHING is the claim (rowcount 0/1 is exact on sqlite3 and psycopg).
_COLUMNS = [c.name for c in checkouts.columns]
_CLAIM = Sql(f"INSERT INTO checkouts ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
             "ON CONFLICT (caller, idem_key) DO NOTHING")
_SALE_COLUMNS = [c.name for c in import_ledger.columns]
_INSERT_SALE_SQL = Sql(f"INSERT INTO import_ledger ({', '.join(_SALE_COLUMNS)}) "
                       f"VALUES ({', '.join(':' + c for c in _SALE_COLUMNS)})")
_SETTLE_TEXT = ("UPDATE checkouts SET status = :status, reason = :reason, order_id = :order_id, "
                "updated_at = :updated_at WHERE checkout_id = :checkout_id AND status = 'PENDING'")
_OUTBOX_SELECT = OUTBOX_INSERT.replace("VALUES (", "SELECT ").rstrip(")")
# PostgreSQL: settle + sale + event in ONE statement (one round trip); the inserts only happen when the guarded
# UPDATE settled the row. SQLite runs three statements (µs each, in-process).
_FINALIZE_PG = Sql(
    f"WITH s AS ({_SETTLE_TEXT} RETURNING checkout_id), "
    f"i AS (INSERT INTO import_ledger ({', '.join(_SALE_COLUMNS)}) "
    f"SELECT {', '.join(':' + c for c in _SALE_COLUMNS)} FROM s), "
    f"e AS ({_OUTBOX_SELECT} FROM s) "
    "SELECT count(*) FROM s"
)
_SETTLE_SQL = Sql(_SETTLE_TEXT)
_BY_KEY = sa.select(checkouts).where(_c.caller == sa.bindparam("b_caller"), _c.idem_key == sa.bindparam("b_key"))
_BY_ID = sa.select(checkouts).where(_c.checkout_id == sa.bindparam("b_id"))
_INSERT_COMPENSATION = sa.insert(compensations)


def checkout_from_row(m: Row) -> storefront_pb2.Checkout:
    """The wire form of a ``checkouts`` row."""
    out = storefront_pb2.Checkout(
        checkout_id=m["checkout_id"], idempotency_key=m["idem_key"], imported_offer_id=m["imported_offer_id"],
        quantity=m["quantity"], buyer_reference=m["buyer_reference"],
        total=money_pb2.Money(currency=m["currency"], amount=m["total"]), status=_STATUS[m["status"]],
        reason=m["reason"], order_id=m["order_id"] or "", correlation_id=m["correlation_id"],
    )
    out.create_time.FromDatetime(m["created_at"])
    out.update_time.FromDatetime(m["updated_at"])
    return out


def claim(conn: sa.Connection, values: dict[str, Any]) -> Row | None:
    """Insert the PENDING checkout; None when inserted, else the row already holding (caller, key)."""
    stamp = db_time(is_sqlite(conn), values["created_at"])
    if _CLAIM.run(conn, {**values, "created_at": stamp, "updated_at": db_time(is_sqlite(conn), values["updated_at"])}
                  ).rowcount == 1:
        return None
    return conn.execute(_BY_KEY, {"b_caller": values["caller"], "b_key": values["idem_key"]}).mappings().one()


def by_key(conn: sa.Connection, caller: str, key: str) -> Row | None:
    return conn.execute(_BY_KEY, {"b_caller": caller, "b_key": key}).mappings().first()


def by_id(conn: sa.Connection, checkout_id: str) -> Row | None:
    return conn.execute(_BY_ID, {"b_id": checkout_id}).mappings().first()


def pending_before(conn: sa.Connection, created_before: dt.datetime) -> list[Row]:
    """PENDING checkouts created before ``created_before`` (what an earlier run of the node left in flight)."""
    return list(conn.execute(sa.select(checkouts).where(_c.status == PENDING, _c.created_at < created_before)
                             ).mappings().all())


def _settle(conn: sa.Connection, checkout_id: str, status: str, reason: str, order_id: str | None,
            now: dt.datetime) -> bool:
    """PENDING → ``status``; False when the checkout was no longer PENDING (someone else settled it)."""
    result = _SETTLE_SQL.run(conn, {"checkout_id": checkout_id, "status": status, "reason": reason,
                                    "order_id": order_id, "updated_at": db_time(is_sqlite(conn), now)})
    settled: bool = result.rowcount == 1
    return settled


def _settled(row: Row, status: str, reason: str, order_id: str | None, now: dt.datetime) -> Row:
    """The row as ``_settle`` left it (no re-read: the guarded UPDATE changed exactly these columns)."""
    return {**row, "status": status, "reason": reason, "order_id": order_id, "updated_at": now}


def finalize(conn: sa.Connection, row: Row, order: order_pb2.Order, wl_id: str, now: dt.datetime) -> Row | None:
    """Record the local sale of a CONFIRMED order: COMPLETED, import ledger entry, ledger event; None if settled."""
    sqlite_db = is_sqlite(conn)
    stamp = db_time(sqlite_db, now)
    sale = dict(
        entry_id="imp_" + uuid.uuid4().hex, checkout_id=row["checkout_id"], order_id=order.order_id, kind="IMPORT",
        exporter_wl=row["exporter_wl"], quantity=row["quantity"], currency=row["currency"], amount=row["total"],
        source_currency=order.total.currency, source_amount=format(Decimal(order.total.amount), "f"),
        fx_version=order.fx_version or row["fx_version"], policy_version=row["policy_version"],
        buyer_reference=row["buyer_reference"], correlation_id=row["correlation_id"], created_at=stamp,
    )
    if not sqlite_db:
        params = {**sale, **event_values(
            kind=telemetry_pb2.LEDGER_EVENT_KIND_IMPORT_FINALIZED, wl_id=wl_id, order_id=order.order_id,
            exporter_wl=row["exporter_wl"], importer_wl=wl_id, amount=order.total, quantity=order.quantity,
            correlation_id=row["correlation_id"], now=now, created_at=stamp),
            "status": COMPLETED, "reason": "", "updated_at": stamp}
        if _FINALIZE_PG.run(conn, params).fetchone()[0] != 1:
            return None
        return _settled(row, COMPLETED, "", order.order_id, now)
    if not _settle(conn, row["checkout_id"], COMPLETED, "", order.order_id, now):
        return None
    _INSERT_SALE_SQL.run(conn, sale)
    append_event(conn, kind=telemetry_pb2.LEDGER_EVENT_KIND_IMPORT_FINALIZED, wl_id=wl_id, order_id=order.order_id,
                 exporter_wl=row["exporter_wl"], importer_wl=wl_id, amount=order.total, quantity=order.quantity,
                 correlation_id=row["correlation_id"], now=now)
    return _settled(row, COMPLETED, "", order.order_id, now)


def fail(conn: sa.Connection, checkout_id: str, reason: str, order_id: str | None, now: dt.datetime) -> Row | None:
    """PENDING → FAILED (nothing sold); the settled row, or None if it was no longer PENDING."""
    if not _settle(conn, checkout_id, FAILED, reason[:64], order_id, now):
        return None
    return by_id(conn, checkout_id)  # not the hot path: the caller has only the id


def compensate(conn: sa.Connection, row: Row, order_id: str, reason: str, now: dt.datetime) -> Row | None:
    """PENDING → CANCELLED and a CancelOrder owed to the exporter (durable outbox row), in one transaction."""
    if not _settle(conn, row["checkout_id"], CANCELLED, reason, order_id, now):
        return None
    conn.execute(_INSERT_COMPENSATION, dict(
        checkout_id=row["checkout_id"], exporter_wl=row["exporter_wl"], order_id=order_id,
        cancel_key="cancel-" + row["checkout_id"], reason=reason, correlation_id=row["correlation_id"],
        attempts=0, last_error="", next_attempt_at=now, acknowledged_at=None, created_at=now,
    ))
    return by_id(conn, row["checkout_id"])


def forget_unsent(conn: sa.Connection, checkout_id: str) -> None:
    """Delete a PENDING checkout whose order was never sent, so the key is free again (as if refused early)."""
    conn.execute(sa.delete(checkouts).where(_c.checkout_id == checkout_id, _c.status == PENDING))


def in_doubt(conn: sa.Connection, older_than: dt.datetime, limit: int) -> list[Row]:
    """PENDING checkouts untouched since ``older_than`` (oldest first)."""
    return list(conn.execute(
        sa.select(checkouts).where(_c.status == PENDING, _c.updated_at < older_than)
        .order_by(_c.updated_at).limit(limit)
    ).mappings().all())


def any_pending(conn: sa.Connection) -> bool:
    """True when some checkout is PENDING (the reconciler then looks often; otherwise it waits for work)."""
    return conn.execute(sa.select(_c.checkout_id).where(_c.status == PENDING).limit(1)).first() is not None


def touch(conn: sa.Connection, checkout_id: str, reason: str, now: dt.datetime) -> None:
    """Keep a checkout PENDING with a note (e.g. IN_DOUBT) and push its next reconciliation back."""
    conn.execute(sa.update(checkouts).where(_c.checkout_id == checkout_id, _c.status == PENDING)
                 .values(reason=reason, updated_at=now))


# --- compensation outbox -----------------------------------------------------------------------------------------
_k = compensations.c


def due_compensations(conn: sa.Connection, now: dt.datetime, limit: int) -> list[Row]:
    return list(conn.execute(
        sa.select(compensations).where(_k.acknowledged_at.is_(None), _k.next_attempt_at <= now)
        .order_by(_k.next_attempt_at).limit(limit)
    ).mappings().all())


OWED_COUNT = sa.select(sa.func.count()).select_from(compensations).where(_k.acknowledged_at.is_(None))
"""How many CancelOrders are owed (``xcwl_compensation_outbox_depth``, read at scrape time)."""


def next_compensation_at(conn: sa.Connection) -> dt.datetime | None:
    """When the earliest unacknowledged compensation is due (UTC), or None when none is owed."""
    first: dt.datetime | str | None = conn.scalar(
        sa.select(sa.func.min(_k.next_attempt_at)).where(_k.acknowledged_at.is_(None)))
    if first is None:
        return None
    if isinstance(first, str):  # aggregate results skip the column type on SQLite
        first = dt.datetime.fromisoformat(first)
    return first if first.tzinfo is not None else first.replace(tzinfo=dt.UTC)


def acknowledge(conn: sa.Connection, row: Row, order: order_pb2.Order | None, wl_id: str, note: str,
                now: dt.datetime) -> None:
    """The exporter acknowledged the cancellation (or has no such order): close the outbox row, report it."""
    conn.execute(sa.update(compensations).where(_k.checkout_id == row["checkout_id"])
                 .values(acknowledged_at=now, last_error=note[:200], attempts=row["attempts"] + 1))
    if order is not None:
        append_event(conn, kind=telemetry_pb2.LEDGER_EVENT_KIND_COMPENSATION, wl_id=wl_id, order_id=order.order_id,
                     exporter_wl=row["exporter_wl"], importer_wl=wl_id, amount=order.total,
                     quantity=order.quantity, correlation_id=row["correlation_id"], now=now)


def retry_later(conn: sa.Connection, row: Row, error: str, next_at: dt.datetime) -> None:
    conn.execute(sa.update(compensations).where(_k.checkout_id == row["checkout_id"])
                 .values(attempts=row["attempts"] + 1, last_error=error[:200], next_attempt_at=next_at))
