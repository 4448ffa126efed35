"""The node's durable queue of ledger and enforcement events for the CP (schema: the ``node_telemetry`` branch).

``enqueue`` is called INSIDE the transaction that records the fact the event reports, so the event exists iff the
fact committed. It assigns the per-node sequence from one counter row (``UPDATE … RETURNING``): the row lock is
held until commit, so sequences are gap-free and increase in commit order on PostgreSQL too, and the shipper,
which reads ``PENDING`` rows by sequence, sends events in the order their facts committed.

``enqueue_sync`` is the same for a sync ``sqlalchemy.Connection`` (the order desk's and checkout's worker-thread
transactions). ``adopt_outbox`` moves rows the order desk and checkout wrote to their own ``ledger_outbox`` into
this queue (one transaction per batch: queued here and marked handed over there, or neither), so their hot path
keeps its single INSERT and every event still leaves the node through one ordered, signed stream.

States: ``PENDING`` (to send) → ``SENT`` (the CP accepted it or already had it) or ``REJECTED`` (the CP refused it;
the reason is kept, it is not retried; ``requeue_rejected`` puts such rows back after a fix).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wl_node.orders.tables import ledger_outbox
from xporty.cp.v1 import telemetry_pb2
from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

PENDING, SENT, REJECTED = "PENDING", "SENT", "REJECTED"
COUNTER = "events"

queue = sa.Table(
    "telemetry_queue",
    metadata,
    sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
)

counter = sa.Table(
    "telemetry_counter",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

_NEXT = (sa.update(counter).where(counter.c.name == COUNTER).values(value=counter.c.value + 1)
         .returning(counter.c.value))
_NEXT_N = (sa.update(counter).where(counter.c.name == COUNTER)
           .values(value=counter.c.value + sa.bindparam("n")).returning(counter.c.value))


@dataclass(frozen=True)
class QueuedEvent:
    """One queue row as the shipper reads it."""

    sequence: int
    event_id: str
    kind: str
    payload: bytes
    attempts: int


def _row(event: telemetry_pb2.LedgerEvent, sequence: int, now: dt.datetime) -> dict[str, object]:
    """Complete ``event`` (id, sequence, time) in place and return its queue row."""
    if not event.event_id:
        event.event_id = uuid.uuid4().hex
    event.sequence = sequence
    if not event.HasField("occur_time"):
        event.occur_time.FromDatetime(now)
    return dict(sequence=sequence, event_id=event.event_id,
                kind=telemetry_pb2.LedgerEventKind.Name(event.kind).removeprefix("LEDGER_EVENT_KIND_"),
                payload=event.SerializeToString(deterministic=True), state=PENDING, reason="", attempts=0,
                created_at=now, sent_at=None)


def _copy(event: telemetry_pb2.LedgerEvent) -> telemetry_pb2.LedgerEvent:
    out = telemetry_pb2.LedgerEvent()
    out.CopyFrom(event)
    return out


async def enqueue(conn: AsyncConnection, event: telemetry_pb2.LedgerEvent, *,
                  now: dt.datetime | None = None) -> str:
    """Queue ``event`` in ``conn``'s transaction; sets ``event_id`` (if empty) and the sequence; returns the id.

    ``event`` itself is not modified. Call it in the transaction that records the fact, never on its own.
    """
    ev = _copy(event)
    seq = (await conn.execute(_NEXT)).scalar_one()
    row = _row(ev, seq, now or dt.datetime.now(dt.UTC))
    await conn.execute(sa.insert(queue), row)
    return str(ev.event_id)


def enqueue_sync(conn: sa.Connection, event: telemetry_pb2.LedgerEvent, *, now: dt.datetime | None = None) -> str:
    """``enqueue`` for a sync connection (``TxRunner`` transactions of the order desk and the checkout)."""
    ev = _copy(event)
    seq = conn.execute(_NEXT).scalar_one()
    row = _row(ev, seq, now or dt.datetime.now(dt.UTC))
    conn.execute(sa.insert(queue), row)
    return str(ev.event_id)


async def enqueue_many(conn: AsyncConnection, events: Sequence[telemetry_pb2.LedgerEvent], *,
                       now: dt.datetime) -> list[str]:
    """Queue several events in order with one counter update (the outbox adoption's batch)."""
    if not events:
        return []
    last = (await conn.execute(_NEXT_N, {"n": len(events)})).scalar_one()
    first = last - len(events) + 1
    rows = []
    for offset, event in enumerate(events):
        ev = _copy(event)
        rows.append(_row(ev, first + offset, now))
    await conn.execute(sa.insert(queue), rows)
    return [str(r["event_id"]) for r in rows]


# --- the order desk's / checkout's outbox ------------------------------------------------------------------------
_o = ledger_outbox.c


async def outbox_waiting(conn: AsyncConnection) -> bool:
    """True when ``ledger_outbox`` holds rows not yet handed to the queue (a cheap read)."""
    row = (await conn.execute(sa.select(_o.sequence).where(_o.shipped_at.is_(None)).limit(1))).first()
    return row is not None


async def adopt_outbox(conn: AsyncConnection, now: dt.datetime, limit: int = 500) -> int:
    """Move up to ``limit`` unhanded ``ledger_outbox`` rows (in their sequence order) into the queue.

    ``shipped_at`` there then means "handed to the telemetry queue". An event whose id is already queued (a row
    adopted before but whose mark was lost cannot happen in one transaction; this guards hand-written rows) is
    only marked.
    """
    rows = (await conn.execute(
        sa.select(_o.sequence, _o.event_id, _o.payload).where(_o.shipped_at.is_(None))
        .order_by(_o.sequence).limit(limit)
    )).all()
    if not rows:
        return 0
    known = set((await conn.execute(
        sa.select(queue.c.event_id).where(queue.c.event_id.in_([r.event_id for r in rows]))
    )).scalars())
    events = []
    for r in rows:
        if r.event_id in known:
            continue
        ev = telemetry_pb2.LedgerEvent.FromString(r.payload)
        ev.event_id = ev.event_id or r.event_id
        events.append(ev)
    await enqueue_many(conn, events, now=now)
    await conn.execute(sa.update(ledger_outbox).where(_o.sequence.in_([r.sequence for r in rows]))
                       .values(shipped_at=now))
    return len(rows)


# --- the shipper's side ------------------------------------------------------------------------------------------
async def pending(conn: AsyncConnection, limit: int) -> list[QueuedEvent]:
    """The oldest ``limit`` unsent events, in sequence order."""
    rows = (await conn.execute(
        sa.select(queue.c.sequence, queue.c.event_id, queue.c.kind, queue.c.payload, queue.c.attempts)
        .where(queue.c.state == PENDING).order_by(queue.c.sequence).limit(limit)
    )).all()
    return [QueuedEvent(r.sequence, r.event_id, r.kind, r.payload, r.attempts) for r in rows]


async def mark_sent(conn: AsyncConnection, sequences: Sequence[int], now: dt.datetime) -> None:
    if sequences:
        await conn.execute(sa.update(queue).where(queue.c.sequence.in_(list(sequences)), queue.c.state == PENDING)
                           .values(state=SENT, sent_at=now, attempts=queue.c.attempts + 1))


async def mark_rejected(conn: AsyncConnection, sequence: int, reason: str, now: dt.datetime) -> None:
    await conn.execute(sa.update(queue).where(queue.c.sequence == sequence, queue.c.state == PENDING)
                       .values(state=REJECTED, reason=reason[:64], sent_at=now, attempts=queue.c.attempts + 1))


async def requeue_rejected(conn: AsyncConnection) -> int:
    """Put every REJECTED event back to PENDING (after the cause was fixed); returns how many."""
    result = await conn.execute(sa.update(queue).where(queue.c.state == REJECTED).values(state=PENDING, reason=""))
    return int(result.rowcount or 0)


async def depth(conn: AsyncConnection) -> int:
    """Events waiting to leave for the CP: queued and unsent, plus those not yet handed over by the order desk's and
    checkout's ``ledger_outbox`` (both counts use an index)."""
    queued = (await conn.execute(sa.select(sa.func.count()).select_from(queue)
                                 .where(queue.c.state == PENDING))).scalar_one()
    unhanded = (await conn.execute(sa.select(sa.func.count()).select_from(ledger_outbox)
                                   .where(_o.shipped_at.is_(None)))).scalar_one()
    return int(queued) + int(unhanded)


async def counts(conn: AsyncConnection) -> dict[str, int]:
    """Rows per state (for reports and tests)."""
    rows = (await conn.execute(sa.select(queue.c.state, sa.func.count()).group_by(queue.c.state))).all()
    return {state: int(n) for state, n in rows}


async def prune_sent(conn: AsyncConnection, older_than: dt.datetime) -> int:
    """Delete SENT rows sent before ``older_than`` (the CP holds them); REJECTED rows are kept for inspection."""
    result = await conn.execute(sa.delete(queue).where(queue.c.state == SENT, queue.c.sent_at < older_than))
    return int(result.rowcount or 0)
