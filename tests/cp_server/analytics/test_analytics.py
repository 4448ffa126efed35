"""AnalyticsService: balance table with trend, discrepancies from the reconciliation loop, operators only."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.cp_server.identity.rpc import refused
from tests.cp_server.risk.harness import KIND, Node, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import analytics_pb2, analytics_service_pb2, analytics_service_pb2_grpc
from xwl_runtime.clock import ManualClock
from xwl_runtime.identity import Identity

WLS = {"wl-a": ("XPY-A", "2"), "wl-b": ("XPY-B", "1"), "wl-c": ("XPY-C", "1")}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str, clock: ManualClock) -> AsyncIterator[RiskCp]:
    async with running_risk_cp(pki, db_url, clock=clock, run_loops=False) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "1000"), ("wl-b", "wl-c", "500")])
        yield cp


def _confirm(cp: RiskCp, order: str, amount: str, cid: str = "cid"):  # type: ignore[no-untyped-def]
    a = cp.node("wl-a")
    return a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id=order, exporter="wl-a", importer="wl-b",
                   amount=amount, currency="XPY-A", correlation_id=cid)


def _finalized(b: Node, order: str, amount: str = "10"):  # type: ignore[no-untyped-def]
    return b.event(KIND.LEDGER_EVENT_KIND_IMPORT_FINALIZED, order_id=order, exporter="wl-a", importer="wl-b",
                   amount=amount, currency="XPY-A")


async def test_balance_table_with_trend_and_time_to_limit(cp: RiskCp, clock: ManualClock) -> None:
    a = cp.node("wl-a")
    await a.publish(_confirm(cp, "o1", "50"))  # 100 in the reference unit
    clock.advance(1800)
    await a.publish(_confirm(cp, "o2", "100"))  # +200 half an hour later
    clock.advance(1800)
    resp = await cp.analytics().GetBalances(analytics_service_pb2.GetBalancesRequest(), timeout=10)
    rows = {(b.wl_a, b.wl_b): b for b in resp.balances}
    ab = rows[("wl-a", "wl-b")]
    assert (ab.exports_a_to_b, ab.exports_b_to_a, ab.net_delta, ab.limit) == ("300", "0", "300", "1000")
    assert ab.utilisation == "0.300000" and ab.level == analytics_pb2.ALERT_LEVEL_OK
    # Anchor: the sample at the window start (100 an hour ago) → +200 per hour; 700 left → 3.5 h.
    assert ab.trend_per_hour == "200.000000"
    assert ab.time_to_limit.ToTimedelta() == dt.timedelta(hours=3, minutes=30)
    bc = rows[("wl-b", "wl-c")]  # a registered pair without events: zeros
    assert (bc.net_delta, bc.utilisation, bc.HasField("time_to_limit")) == ("0", "0.000000", False)


async def test_discrepancy_after_grace_and_resolution(cp: RiskCp, clock: ManualClock) -> None:
    a, b = cp.node("wl-a"), cp.node("wl-b")
    a.honest_importer = False  # wl-b reports by hand below
    await a.publish(_confirm(cp, "o-open", "10", cid="cid-open"), _confirm(cp, "o-done", "10"),
                    _confirm(cp, "o-cancel", "10"))
    await b.publish(_finalized(b, "o-done"), _finalized(b, "o-orphan"),
                    b.event(KIND.LEDGER_EVENT_KIND_COMPENSATION, order_id="o-cancel", exporter="wl-a",
                            importer="wl-b"))
    await a.publish(a.event(KIND.LEDGER_EVENT_KIND_ORDER_CANCELLED, order_id="o-cancel", exporter="wl-a",
                            importer="wl-b"))
    assert await cp.parts.reconciler.run_once() == 0  # within the grace period
    clock.advance(cp.parts.reconciler._settings.reconciliation_grace.total_seconds() + 1)
    assert await cp.parts.reconciler.run_once() == 2
    assert await cp.parts.reconciler.run_once() == 0  # stored once
    stub = cp.analytics()
    found = (await stub.ListDiscrepancies(analytics_service_pb2.ListDiscrepanciesRequest(), timeout=10))
    assert {(d.order_id, d.reason) for d in found.discrepancies} == {
        ("o-open", "IMPORT_NOT_FINALIZED"), ("o-orphan", "EXPORT_NOT_CONFIRMED")}
    assert next(d for d in found.discrepancies if d.order_id == "o-open").correlation_id == "cid-open"
    actions = [e.action for e in await cp.audit.list(cp.engine, after_seq=0, limit=100)]
    assert actions.count("risk.discrepancy") == 2
    # The late finalization resolves it.
    await b.publish(_finalized(b, "o-open"))
    found = (await stub.ListDiscrepancies(analytics_service_pb2.ListDiscrepanciesRequest(), timeout=10))
    assert [d.order_id for d in found.discrepancies] == ["o-orphan"]


async def test_analytics_is_for_operators_only(cp: RiskCp) -> None:
    stub = analytics_service_pb2_grpc.AnalyticsServiceStub(cp.channel(Identity.wl("wl-a")))
    err = await refused(stub.GetBalances(analytics_service_pb2.GetBalancesRequest(), timeout=5))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")
