"""The node's event queue and shipper against the real CP: nothing lost while the CP is down, order, exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from cp_server.risk.tables import events as cp_events
from cp_server.risk.tables import orders as cp_orders
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory
from tests.wl_node.conftest import eventually
from tests.wl_node.risk.harness import World, telemetry_of, world
from wl_node.orders.tables import ledger_outbox
from wl_node.telemetry import queue as q
from wl_node.telemetry.queue import enqueue
from xporty.common.v1 import money_pb2
from xporty.cp.v1 import telemetry_pb2

K = telemetry_pb2.LedgerEventKind


def _event(kind: int, order_id: str, amount: str) -> telemetry_pb2.LedgerEvent:
    return telemetry_pb2.LedgerEvent(
        wl_id="wl-a", correlation_id=f"cid-{order_id}", kind=kind, order_id=order_id, exporter_wl="wl-a",
        importer_wl="wl-b", amount=money_pb2.Money(currency="XPY-A", amount=amount), quantity=1)


async def _exporter_side(w: World) -> Decimal:
    """What wl-a's confirmations (minus its cancellations) are worth at the CP: the value its orders count once
    the importer agrees or the grace period ends (wl-b is silent in these tests, so the balance itself waits)."""
    o = cp_orders
    async with w.cp.ctx.engine.connect() as conn:
        values = (await conn.execute(sa.select(o.c.export_value).where(
            o.c.exporter_wl == "wl-a", o.c.cancelled_at.is_(None), o.c.export_value.is_not(None)))).scalars()
        return sum((Decimal(v) for v in values), Decimal(0))


async def _outbox_row(conn: sa.ext.asyncio.AsyncConnection, event: telemetry_pb2.LedgerEvent) -> None:
    """What the order desk writes in its PlaceOrder / CancelOrder transaction."""
    event.event_id = uuid.uuid4().hex
    event.occur_time.FromDatetime(dt.datetime.now(dt.UTC))
    await conn.execute(sa.insert(ledger_outbox).values(
        event_id=event.event_id, kind=K.Name(event.kind).removeprefix("LEDGER_EVENT_KIND_"),
        order_id=event.order_id, correlation_id=event.correlation_id, payload=event.SerializeToString(),
        created_at=dt.datetime.now(dt.UTC)))


async def test_events_queued_while_the_cp_is_down_arrive_once_in_order_with_exact_balances(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b"]) as w:
        node = await w.start_node("wl-a")
        shipper = telemetry_of(node).shipper
        assert shipper is not None
        await w.cp.stop(0)

        # 40 orders confirmed, every 4th cancelled later: half through enqueue(), half through the desk's outbox.
        expected = Decimal(0)
        ids: list[str] = []
        for i in range(40):
            amount = f"{i + 1}.25"
            async with node.engine.begin() as conn:  # the transaction that records the fact
                ev = _event(K.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, f"ord-{i}", amount)
                if i % 2:
                    ids.append(await enqueue(conn, ev))
                else:
                    await _outbox_row(conn, ev)
            expected += Decimal(amount)
            if i % 4 == 3:
                async with node.engine.begin() as conn:
                    await enqueue(conn, _event(K.LEDGER_EVENT_KIND_ORDER_CANCELLED, f"ord-{i}", amount))
                expected -= Decimal(amount)
        total = 40 + 10
        shipper.kick()  # as the node's commit listener does after each order transaction (these wrote directly)

        async def all_queued() -> bool:  # the desk's outbox rows are adopted even while the CP is down
            async with node.engine.connect() as conn:
                return await q.counts(conn) == {q.PENDING: total}

        await eventually(lambda: shipper.stats.failures >= 2, timeout=10)  # it tried, and backs off
        await eventually(all_queued, timeout=10)
        async with node.engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(ledger_outbox)
                                       .where(ledger_outbox.c.shipped_at.is_(None)))).scalar_one() == 0

        await w.start_cp()

        async def all_sent() -> bool:
            async with node.engine.connect() as conn:
                return await q.counts(conn) == {q.SENT: total}

        await eventually(all_sent, timeout=20)
        async with w.cp.ctx.engine.connect() as conn:
            rows = (await conn.execute(sa.select(cp_events.c.event_id, cp_events.c.node_sequence,
                                                 cp_events.c.received_at, cp_events.c.kind)
                                       .where(cp_events.c.wl_id == "wl-a")
                                       .order_by(cp_events.c.node_sequence))).all()
        assert [r.node_sequence for r in rows] == list(range(1, total + 1))  # all, once, gap-free
        assert all(a.received_at <= b.received_at for a, b in zip(rows, rows[1:], strict=False))  # in order
        assert set(ids) <= {r.event_id for r in rows}
        assert await _exporter_side(w) == expected
        assert Decimal((await w.balances())[("wl-a", "wl-b")].net_delta) == 0  # the importer has not agreed

        # An answer lost after the CP stored the batch: the resend is a duplicate, nothing counts twice.
        async with node.engine.begin() as conn:
            await conn.execute(sa.update(q.queue).values(state=q.PENDING))
        shipper.kick()
        await eventually(all_sent, timeout=20)
        assert shipper.stats.duplicates == total
        async with w.cp.ctx.engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(cp_events)
                                       .where(cp_events.c.wl_id == "wl-a"))).scalar_one() == total
        assert await _exporter_side(w) == expected


async def test_refused_events_are_kept_with_the_reason_and_not_retried(
    tmp_path: Path, pki: PkiFixture, sqlite_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, sqlite_dbs, ["wl-a", "wl-b"]) as w:
        node = await w.start_node("wl-a")
        shipper = telemetry_of(node).shipper
        assert shipper is not None
        async with node.engine.begin() as conn:
            bad = _event(K.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, "ord-x", "1.00")
            bad.correlation_id = ""  # the CP refuses events without a correlation id
            await enqueue(conn, bad)
            await enqueue(conn, _event(K.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, "ord-y", "2.00"))
        shipper.kick()

        async def settled() -> bool:
            async with node.engine.connect() as conn:
                return await q.counts(conn) == {q.REJECTED: 1, q.SENT: 1}

        await eventually(settled, timeout=20)
        async with node.engine.connect() as conn:
            reason = (await conn.execute(sa.select(q.queue.c.reason).where(q.queue.c.state == q.REJECTED))
                      ).scalar_one()
        assert reason == "MISSING_CORRELATION_ID"
        rejected = shipper.stats.rejected
        await asyncio.sleep(0.5)  # several idle rounds: the refused event is not sent again
        assert shipper.stats.rejected == rejected == 1
        assert await _exporter_side(w) == Decimal("2.00")


async def test_an_event_that_fails_the_whole_batch_is_set_aside_and_the_rest_is_sent(
    tmp_path: Path, pki: PkiFixture, sqlite_dbs: DbFactory
) -> None:
    """The CP refuses a batch whole for one event its node does not own (EVENT_NOT_OWNED: the exporter reporting
    the importer's finalization); the shipper marks that event REJECTED and ships the others."""
    async with world(tmp_path, pki, sqlite_dbs, ["wl-a", "wl-b"]) as w:
        node = await w.start_node("wl-a")
        shipper = telemetry_of(node).shipper
        assert shipper is not None
        async with node.engine.begin() as conn:
            await enqueue(conn, _event(K.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, "ord-1", "1.00"))
            await enqueue(conn, _event(K.LEDGER_EVENT_KIND_IMPORT_FINALIZED, "ord-1", "1.00"))  # not wl-a's fact
            await enqueue(conn, _event(K.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, "ord-2", "2.00"))
        shipper.kick()

        async def settled() -> bool:
            async with node.engine.connect() as conn:
                return await q.counts(conn) == {q.REJECTED: 1, q.SENT: 2}

        await eventually(settled, timeout=20)
        async with node.engine.connect() as conn:
            row = (await conn.execute(sa.select(q.queue.c.kind, q.queue.c.reason)
                                      .where(q.queue.c.state == q.REJECTED))).one()
        assert (row.kind, row.reason) == ("IMPORT_FINALIZED", "EVENT_NOT_OWNED")
        async with w.cp.ctx.engine.connect() as conn:
            kinds = list((await conn.execute(sa.select(cp_events.c.kind).where(cp_events.c.wl_id == "wl-a")
                                             .order_by(cp_events.c.node_sequence))).scalars())
        assert kinds == ["EXPORT_CONFIRMED", "EXPORT_CONFIRMED"]
        assert await _exporter_side(w) == Decimal("3.00")
