"""SignalService: replay and live push, heartbeats, who may watch/ack/send, operator signals, cross-replica push."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import grpc
import psycopg
import pytest
import sqlalchemy as sa

from cp_server.risk import tables as t
from tests.cp_server.identity.rpc import refused
from tests.cp_server.risk.harness import KIND, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import signal_pb2, signal_service_pb2

WLS = {"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "1"), "wl-c": ("XPY-C", "1")}
PAIRS = [("wl-a", "wl-b", "1000"), ("wl-b", "wl-c", "1000")]
DISABLE, ENABLE = signal_pb2.SIGNAL_KIND_DISABLE, signal_pb2.SIGNAL_KIND_ENABLE


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[RiskCp]:
    async with running_risk_cp(pki, db_url, heartbeat=dt.timedelta(milliseconds=200)) as cp:
        await cp.seed(WLS, PAIRS)
        yield cp


def _send(kind: int, exporter: str = "wl-a", importer: str = "wl-b", reason: str = "manual") -> (
        signal_service_pb2.SendSignalRequest):
    return signal_service_pb2.SendSignalRequest(kind=kind, exporter_wl=exporter, importer_wl=importer, reason=reason)


async def _first(call: object, n: int) -> list[signal_service_pb2.WatchSignalsResponse]:
    out = []
    async for msg in call:  # type: ignore[attr-defined]
        out.append(msg)
        if len(out) == n:
            call.cancel()  # type: ignore[attr-defined]
            break
    return out


async def test_replay_after_sequence_then_heartbeat(cp: RiskCp) -> None:
    ops = cp.ops_signals()
    first = (await ops.SendSignal(_send(DISABLE), timeout=10)).signal
    second = (await ops.SendSignal(_send(ENABLE), timeout=10)).signal
    await ops.SendSignal(_send(DISABLE, "wl-c", "wl-b"), timeout=10)  # not wl-a's business
    assert (first.sequence, second.sequence) == (1, 2)
    assert first.source == signal_pb2.SIGNAL_SOURCE_OPERATOR
    a = cp.node("wl-a")
    msgs = await _first(a.signals.WatchSignals(signal_service_pb2.WatchSignalsRequest(), timeout=10), 3)
    assert [m.signal.signal_id for m in msgs[:2]] == [first.signal_id, second.signal_id]
    assert msgs[2].WhichOneof("event") == "heartbeat_sequence" and msgs[2].heartbeat_sequence == 3
    msgs = await _first(a.signals.WatchSignals(signal_service_pb2.WatchSignalsRequest(after_sequence=1),
                                               timeout=10), 2)
    assert msgs[0].signal.signal_id == second.signal_id
    assert msgs[1].WhichOneof("event") == "heartbeat_sequence"
    # Operators watch any WL's signals by naming it.
    msgs = await _first(ops.WatchSignals(signal_service_pb2.WatchSignalsRequest(wl_id="wl-c"), timeout=10), 1)
    assert msgs[0].signal.exporter_wl == "wl-c"


async def test_live_push_and_idle_heartbeats(cp: RiskCp) -> None:
    b = cp.node("wl-b")
    call = b.signals.WatchSignals(signal_service_pb2.WatchSignalsRequest(), timeout=20)
    it = call.__aiter__()
    assert (await it.__anext__()).WhichOneof("event") == "heartbeat_sequence"  # replay done, stream live
    assert (await asyncio.wait_for(it.__anext__(), 2)).WhichOneof("event") == "heartbeat_sequence"  # idle
    sent = (await cp.ops_signals().SendSignal(_send(DISABLE), timeout=10)).signal
    while True:
        msg = await asyncio.wait_for(it.__anext__(), 2)
        if msg.HasField("signal"):
            break
    assert msg.signal.signal_id == sent.signal_id and msg.signal.kind == DISABLE
    call.cancel()


async def test_who_may_watch_ack_and_send(cp: RiskCp) -> None:
    b = cp.node("wl-b")
    err = await refused(_first(b.signals.WatchSignals(signal_service_pb2.WatchSignalsRequest(wl_id="wl-a"),
                                                      timeout=5), 1))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OTHER_WL")
    err = await refused(_first(cp.ops_signals().WatchSignals(signal_service_pb2.WatchSignalsRequest(), timeout=5), 1))
    assert (err.code, err.metadata) == (grpc.StatusCode.INVALID_ARGUMENT, {"field": "wl_id"})
    err = await refused(b.signals.SendSignal(_send(DISABLE), timeout=5))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")
    sent = (await cp.ops_signals().SendSignal(_send(DISABLE), timeout=10)).signal
    req = signal_service_pb2.AckSignalRequest(signal_id=sent.signal_id)
    req.effective_time.FromDatetime(dt.datetime.now(dt.UTC))
    err = await refused(cp.node("wl-c").signals.AckSignal(req, timeout=5))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OTHER_WL")
    err = await refused(b.signals.AckSignal(signal_service_pb2.AckSignalRequest(signal_id=sent.signal_id),
                                            timeout=5))
    assert (err.code, err.metadata) == (grpc.StatusCode.INVALID_ARGUMENT, {"field": "effective_time"})
    unknown = signal_service_pb2.AckSignalRequest(signal_id="nope", effective_time=req.effective_time)
    err = await refused(b.signals.AckSignal(unknown, timeout=5))
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_SIGNAL")
    await b.signals.AckSignal(req, timeout=5)
    await b.signals.AckSignal(req, timeout=5)  # idempotent: the first acknowledgement is kept
    async with cp.engine.connect() as conn:
        assert len((await conn.execute(sa.select(t.signal_acks))).all()) == 1


@pytest.mark.parametrize(("request_", "field"), [
    (signal_service_pb2.SendSignalRequest(exporter_wl="wl-a", importer_wl="wl-b", reason="x"), "kind"),
    (_send(DISABLE, exporter=""), "exporter_wl"),
    (_send(DISABLE, importer="wl-a"), "importer_wl"),
    (_send(DISABLE, reason="  "), "reason"),
])
async def test_send_signal_validation_stores_nothing(
    cp: RiskCp, request_: signal_service_pb2.SendSignalRequest, field: str
) -> None:
    err = await refused(cp.ops_signals().SendSignal(request_, timeout=5))
    assert (err.code, err.metadata) == (grpc.StatusCode.INVALID_ARGUMENT, {"field": field})
    async with cp.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(t.signals))).scalar_one() == 0


async def test_send_signal_for_unknown_pair_is_not_found(cp: RiskCp) -> None:
    err = await refused(cp.ops_signals().SendSignal(_send(DISABLE, "wl-a", "wl-c"), timeout=5))
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_PAIR")


async def test_operator_disable_is_never_lifted_automatically(cp: RiskCp) -> None:
    ops = cp.ops_signals()
    await ops.SendSignal(_send(DISABLE, reason="fraud review"), timeout=10)
    a = cp.node("wl-a")
    b = cp.node("wl-b")
    await a.publish(a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="o1", exporter="wl-a",
                            importer="wl-b", amount="1200", currency="XPY-A"))
    await b.publish(b.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="o2", exporter="wl-b",
                            importer="wl-a", amount="1100", currency="XPY-B"))  # back to 10%
    async with cp.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.signals.c.kind, t.signals.c.source)
                                   .order_by(t.signals.c.sequence))).all()
        state = (await conn.execute(sa.select(t.direction_state))).one()
    # The automatic level crossings only inform (ALERT / ALERT_CLEARED); no automatic DISABLE or ENABLE.
    assert [(r.kind, r.source) for r in rows if not r.kind.startswith("ALERT")] == [("DISABLE", "OPERATOR")]
    assert state.disabled and state.source == "OPERATOR"
    audit = [(e.action, e.actor) for e in await cp.audit.list(cp.engine, after_seq=0, limit=100)]
    assert ("signal.disable", "spiffe://xporty/ops/alice") in audit


@pytest.mark.postgres
async def test_signal_committed_on_one_replica_reaches_streams_on_another(
    pki: PkiFixture, postgres_db_url: str
) -> None:
    async with running_risk_cp(pki, postgres_db_url) as one, running_risk_cp(pki, postgres_db_url) as two:
        await one.seed(WLS, PAIRS)
        assert two.parts.listener is not None
        await asyncio.wait_for(two.parts.listener.connected.wait(), 10)
        b_on_two = two.node("wl-b")
        call = b_on_two.signals.WatchSignals(signal_service_pb2.WatchSignalsRequest(), timeout=20)
        it = call.__aiter__()
        await it.__anext__()  # live
        a_on_one = one.node("wl-a")
        await a_on_one.publish(a_on_one.event(
            KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="o1", exporter="wl-a", importer="wl-b",
            amount="1500", currency="XPY-A", correlation_id="cid-x"))
        while True:
            msg = await asyncio.wait_for(it.__anext__(), 5)
            if msg.HasField("signal") and msg.signal.kind != signal_pb2.SIGNAL_KIND_ALERT:
                break
        assert (msg.signal.kind, msg.signal.correlation_id) == (DISABLE, "cid-x")

        # Cut replica two's LISTEN connection: it reconnects, and an operator's signal on one still reaches it.
        listener = two.parts.listener
        async with await psycopg.AsyncConnection.connect(postgres_db_url, autocommit=True) as admin_conn:
            killed = await (await admin_conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query ILIKE 'LISTEN%'")).fetchone()
        assert killed is not None and killed[0] >= 1
        sent = (await one.ops_signals().SendSignal(_send(ENABLE, "wl-a", "wl-b"), timeout=10)).signal
        while True:  # through the NOTIFY, or the catch-up read of the reconnected listener
            msg = await asyncio.wait_for(it.__anext__(), 10)
            if msg.HasField("signal") and msg.signal.kind != signal_pb2.SIGNAL_KIND_ALERT:
                break
        assert (msg.signal.kind, msg.signal.signal_id) == (ENABLE, sent.signal_id)
        await asyncio.wait_for(listener.connected.wait(), 10)
        call.cancel()
