"""A pair driven across 80% and 100%: one alert, one DISABLE while hovering, ENABLE below 60% — end to end."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import grpc
import pytest

from tests.cp_server.risk.harness import KIND, Node, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import analytics_pb2, analytics_service_pb2, signal_pb2, signal_service_pb2

WLS = {"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "0.5"), "wl-c": ("XPY-C", "1")}


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[RiskCp]:
    async with running_risk_cp(pki, db_url) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "1000"), ("wl-b", "wl-c", "1000")])
        yield cp


class Orders:
    """Confirms orders in either direction of the wl-a/wl-b pair (wl-b's currency is worth 0.5)."""

    def __init__(self, a: Node, b: Node) -> None:
        self.a, self.b, self.n = a, b, 0

    async def a_exports(self, ref_value: int, cid: str | None = None) -> str:
        self.n += 1
        oid = f"a{self.n}"
        await self._ok(self.a, self.a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id=oid, exporter="wl-a",
                                            importer="wl-b", amount=str(ref_value), currency="XPY-A",
                                            correlation_id=cid))
        return oid

    async def b_exports(self, ref_value: int) -> str:
        self.n += 1
        oid = f"b{self.n}"
        await self._ok(self.b, self.b.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id=oid, exporter="wl-b",
                                            importer="wl-a", amount=str(ref_value * 2), currency="XPY-B"))
        return oid

    async def cancel(self, node: Node, oid: str, exporter: str, importer: str) -> None:
        await self._ok(node, node.event(KIND.LEDGER_EVENT_KIND_ORDER_CANCELLED, order_id=oid, exporter=exporter,
                                        importer=importer))

    @staticmethod
    async def _ok(node: Node, event: object) -> None:
        resp = await node.publish(event)  # type: ignore[arg-type]
        assert resp.accepted == 1, resp


async def _watch(node: Node, into: list[signal_pb2.Signal], ready: asyncio.Event) -> None:
    call = node.signals.WatchSignals(signal_service_pb2.WatchSignalsRequest())
    try:
        async for msg in call:
            if msg.HasField("signal"):
                into.append(msg.signal)
            else:
                ready.set()
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.CANCELLED:
            raise


ALERT_KINDS = (signal_pb2.SIGNAL_KIND_ALERT, signal_pb2.SIGNAL_KIND_ALERT_CLEARED)


def _trade(signals: list[signal_pb2.Signal]) -> list[signal_pb2.Signal]:
    """The signals that change trade (DISABLE/ENABLE), without the alerts that inform."""
    return [s for s in signals if s.kind not in ALERT_KINDS]


async def _wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _balance(cp: RiskCp) -> analytics_pb2.PairBalance:
    resp = await cp.analytics().GetBalances(analytics_service_pb2.GetBalancesRequest(), timeout=10)
    return next(b for b in resp.balances if (b.wl_a, b.wl_b) == ("wl-a", "wl-b"))


async def test_alert_disable_hover_and_reenable(cp: RiskCp) -> None:
    a, b, c = cp.node("wl-a"), cp.node("wl-b"), cp.node("wl-c")
    got_b: list[signal_pb2.Signal] = []
    got_c: list[signal_pb2.Signal] = []
    ready_b, ready_c = asyncio.Event(), asyncio.Event()
    watchers = [asyncio.create_task(_watch(b, got_b, ready_b)), asyncio.create_task(_watch(c, got_c, ready_c))]
    await asyncio.wait_for(asyncio.gather(ready_b.wait(), ready_c.wait()), 10)
    orders = Orders(a, b)
    analytics = cp.analytics()

    await orders.a_exports(700)
    assert (await _balance(cp)).level == analytics_pb2.ALERT_LEVEL_OK
    await orders.a_exports(150, cid="cid-crossing-80")  # 850 → 85%: the alert
    bal = await _balance(cp)
    assert (bal.utilisation, bal.level) == ("0.850000", analytics_pb2.ALERT_LEVEL_ALERT)
    # Hover between 75% and 95%: no new alert, no signal.
    await orders.b_exports(100)
    await orders.a_exports(100)
    await orders.b_exports(100)
    alerts = (await analytics.ListAlerts(analytics_service_pb2.ListAlertsRequest(), timeout=10)).alerts
    assert len(alerts) == 1 and alerts[0].open and alerts[0].correlation_id == "cid-crossing-80"
    # The 80% level reaches the pair's WLs as one ALERT signal (exporter/importer = the pair's wl_a/wl_b).
    await _wait_for(lambda: len(got_b) == 1)
    alert = got_b[0]
    assert alert.kind == signal_pb2.SIGNAL_KIND_ALERT and alert.correlation_id == "cid-crossing-80"
    assert (alert.exporter_wl, alert.importer_wl) == ("wl-a", "wl-b") and "0.850000" in alert.reason

    crossing = await orders.a_exports(260, cid="cid-crossing-100")  # 700+150-100+100-100+260 = 1010 → 101%
    await _wait_for(lambda: len(got_b) == 2)
    disable = got_b[1]
    assert disable.kind == signal_pb2.SIGNAL_KIND_DISABLE
    assert disable.source == signal_pb2.SIGNAL_SOURCE_AUTOMATIC
    assert (disable.exporter_wl, disable.importer_wl) == ("wl-a", "wl-b")  # wl-a's exports made the net
    assert disable.correlation_id == "cid-crossing-100"
    assert disable.plan.required_reference_value == "210.00"  # 1010 - 80% of 1000
    assert list(disable.plan.offers) == []  # the CP has no catalog

    # Hover above and around 100%: still exactly one signal, one alert.
    await orders.cancel(a, crossing, "wl-a", "wl-b")  # 750 → 75%: above the 60% re-enable level
    await orders.a_exports(300)  # 1050
    await orders.b_exports(200)  # 850
    assert len((await analytics.ListAlerts(analytics_service_pb2.ListAlertsRequest(), timeout=10)).alerts) == 1
    signals = (await analytics.ListSignals(analytics_service_pb2.ListSignalsRequest(), timeout=10)).signals
    assert [s.kind for s in signals] == [signal_pb2.SIGNAL_KIND_DISABLE, signal_pb2.SIGNAL_KIND_ALERT]
    bal = await _balance(cp)
    assert (Decimal(bal.net_delta), bal.level) == (Decimal(850), analytics_pb2.ALERT_LEVEL_DISABLED)

    # The importer acknowledges: the reaction time is kept (ack effective time - CP receipt of the crossing).
    ack_time = dt.datetime.now(dt.UTC)
    req = signal_service_pb2.AckSignalRequest(signal_id=disable.signal_id)
    req.effective_time.FromDatetime(ack_time)
    await b.signals.AckSignal(req, timeout=10)

    await orders.b_exports(300)  # 550 → 55% < 60%: re-enable, alert closed (and ALERT_CLEARED to the WLs)
    await _wait_for(lambda: len(got_b) == 4)
    assert [s.kind for s in got_b[2:] if s.kind in ALERT_KINDS] == [signal_pb2.SIGNAL_KIND_ALERT_CLEARED]
    enable = _trade(got_b)[1]
    assert enable.kind == signal_pb2.SIGNAL_KIND_ENABLE and enable.sequence > disable.sequence
    assert (enable.exporter_wl, enable.importer_wl) == ("wl-a", "wl-b")
    alerts = (await analytics.ListAlerts(analytics_service_pb2.ListAlertsRequest(), timeout=10)).alerts
    assert len(alerts) == 1 and not alerts[0].open and alerts[0].level == analytics_pb2.ALERT_LEVEL_DISABLED
    assert (await _balance(cp)).level == analytics_pb2.ALERT_LEVEL_OK
    assert got_c == []  # wl-c is not in the pair

    # Stored and audited with the correlation ids of the crossing events.
    entries = await cp.audit.list(cp.engine, after_seq=0, limit=100)
    audited = [(e.action, e.correlation_id) for e in entries]
    assert ("risk.alert.raise", "cid-crossing-80") in audited
    assert ("signal.disable", "cid-crossing-100") in audited
    assert [x for x, _ in audited].count("signal.enable") == 1
    assert await cp.audit.verify(cp.engine) == (True, len(entries), 0)
    import sqlalchemy as sa

    from cp_server.risk import tables as t
    async with cp.engine.connect() as conn:
        ack = (await conn.execute(sa.select(t.signal_acks))).one()
        sig = (await conn.execute(sa.select(t.signals).where(t.signals.c.signal_id == disable.signal_id))).one()
    assert ack.wl_id == "wl-b" and ack.effective_time == ack_time
    assert sig.trigger_received_at is not None and sig.trigger_received_at <= ack_time

    for w in watchers:
        w.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)


async def test_deficit_direction_flips_when_the_other_side_overshoots(cp: RiskCp) -> None:
    a, b = cp.node("wl-a"), cp.node("wl-b")
    orders = Orders(a, b)
    await orders.a_exports(1100)  # +1100: disable a→b
    await orders.b_exports(2300)  # -1200: enable a→b, disable b→a (never both disabled by the CP)
    signals = (await cp.analytics().ListSignals(analytics_service_pb2.ListSignalsRequest(), timeout=10)).signals
    seen = [(s.kind, s.exporter_wl) for s in reversed(_trade(list(signals)))]
    assert seen == [(signal_pb2.SIGNAL_KIND_DISABLE, "wl-a"), (signal_pb2.SIGNAL_KIND_ENABLE, "wl-a"),
                    (signal_pb2.SIGNAL_KIND_DISABLE, "wl-b")]
    alerts = (await cp.analytics().ListAlerts(analytics_service_pb2.ListAlertsRequest(), timeout=10)).alerts
    assert len(alerts) == 1


async def test_limit_change_reevaluates_thresholds(cp: RiskCp) -> None:
    a, b = cp.node("wl-a"), cp.node("wl-b")
    await Orders(a, b).a_exports(500)
    await cp.set_limit("wl-a", "wl-b", Decimal("400"))
    await cp.parts.reconciler.run_once()
    signals = _trade(list((await cp.analytics().ListSignals(analytics_service_pb2.ListSignalsRequest(),
                                                             timeout=10)).signals))
    assert [(s.kind, s.exporter_wl) for s in signals] == [(signal_pb2.SIGNAL_KIND_DISABLE, "wl-a")]
    await cp.set_limit("wl-a", "wl-b", Decimal("5000"))
    await cp.parts.reconciler.run_once()
    signals = _trade(list((await cp.analytics().ListSignals(analytics_service_pb2.ListSignalsRequest(),
                                                             timeout=10)).signals))
    assert [s.kind for s in signals] == [signal_pb2.SIGNAL_KIND_ENABLE, signal_pb2.SIGNAL_KIND_DISABLE]


async def test_limit_lowered_then_an_event_that_moves_nothing_disables_at_once(pki: PkiFixture, db_url: str) -> None:
    """A batch that touches a pair whose limit changed evaluates the new limit even when it moves no balance (an
    order's first half), and marks it evaluated only then: the DISABLE comes with that batch, once."""
    async with running_risk_cp(pki, db_url, run_loops=False) as cp:  # no reconciler pass of its own
        await cp.seed(WLS, [("wl-a", "wl-b", "1000")])
        a, b = cp.node("wl-a"), cp.node("wl-b")
        await Orders(a, b).a_exports(500)
        await cp.set_limit("wl-a", "wl-b", Decimal("400"))
        a.honest_importer = False  # wl-b never finalizes: this confirmation alone moves no balance
        await Orders._ok(a, a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="half", exporter="wl-a",
                                    importer="wl-b", amount="10", currency="XPY-A"))
        assert (await _balance(cp)).net_delta == "500"
        signals = _trade(list((await cp.analytics().ListSignals(analytics_service_pb2.ListSignalsRequest(),
                                                                 timeout=10)).signals))
        assert [(s.kind, s.exporter_wl) for s in signals] == [(signal_pb2.SIGNAL_KIND_DISABLE, "wl-a")]
        await cp.parts.reconciler.run_once()  # nothing left to re-evaluate
        again = _trade(list((await cp.analytics().ListSignals(analytics_service_pb2.ListSignalsRequest(),
                                                               timeout=10)).signals))
        assert [s.signal_id for s in again] == [signals[0].signal_id]
