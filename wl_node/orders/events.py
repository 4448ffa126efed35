"""Ledger events for the CP, written to the node's outbox in the same transaction as the fact they report.

Both sides use this: the exporter for EXPORT_CONFIRMED / ORDER_CANCELLED, the importer for IMPORT_FINALIZED /
COMPENSATION (each side reports only the facts it owns; the CP refuses the others). Amounts are the order's total
as the exporter wrote it (a canonical decimal), with the order's quantity, so the CP can compare both sides. The
payload is an unsigned ``xporty.cp.v1.LedgerEvent``; the shipper (risk feature) sets
``sequence`` from the outbox row, signs with the node's current certificate key and marks the row shipped.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from xporty.common.v1 import money_pb2
from xporty.cp.v1 import telemetry_pb2

from .rawsql import Sql, db_time, is_sqlite

KIND_NAMES = {
    telemetry_pb2.LEDGER_EVENT_KIND_EXPORT_CONFIRMED: "EXPORT_CONFIRMED",
    telemetry_pb2.LEDGER_EVENT_KIND_IMPORT_FINALIZED: "IMPORT_FINALIZED",
    telemetry_pb2.LEDGER_EVENT_KIND_ORDER_CANCELLED: "ORDER_CANCELLED",
    telemetry_pb2.LEDGER_EVENT_KIND_COMPENSATION: "COMPENSATION",
}

OUTBOX_INSERT = (
    "INSERT INTO ledger_outbox (event_id, kind, order_id, correlation_id, payload, created_at) "
    "VALUES (:event_id, :event_kind, :order_id, :correlation_id, :payload, :created_at)"
)
"""The outbox insert's text (also part of the exporter's combined PlaceOrder statement on PostgreSQL)."""
_INSERT = Sql(OUTBOX_INSERT)


def event_values(
    *,
    kind: telemetry_pb2.LedgerEventKind,
    wl_id: str,
    order_id: str,
    exporter_wl: str,
    importer_wl: str,
    amount: money_pb2.Money,
    quantity: int,
    correlation_id: str,
    now: dt.datetime,
    created_at: object,
) -> dict[str, object]:
    """The outbox row's parameters (``created_at`` already in the store's form, see ``rawsql.db_time``)."""
    event_id = uuid.uuid4().hex
    event = telemetry_pb2.LedgerEvent(
        event_id=event_id, wl_id=wl_id, correlation_id=correlation_id, kind=kind, order_id=order_id,
        exporter_wl=exporter_wl, importer_wl=importer_wl, amount=amount, quantity=quantity,
    )
    event.occur_time.FromDatetime(now)
    return {"event_id": event_id, "event_kind": KIND_NAMES[kind], "order_id": order_id,
            "correlation_id": correlation_id, "payload": event.SerializeToString(), "created_at": created_at}


def append_event(
    conn: sa.Connection,
    *,
    kind: telemetry_pb2.LedgerEventKind,
    wl_id: str,
    order_id: str,
    exporter_wl: str,
    importer_wl: str,
    amount: money_pb2.Money,
    quantity: int,
    correlation_id: str,
    now: dt.datetime,
) -> str:
    """Queue one ledger event in ``conn``'s transaction; returns its id."""
    values = event_values(kind=kind, wl_id=wl_id, order_id=order_id, exporter_wl=exporter_wl,
                          importer_wl=importer_wl, amount=amount, quantity=quantity, correlation_id=correlation_id,
                          now=now,
                          created_at=db_time(is_sqlite(conn), now))
    _INSERT.run(conn, values)
    return str(values["event_id"])
