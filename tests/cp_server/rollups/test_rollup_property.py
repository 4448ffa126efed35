"""Rollups kept by the ingest transaction equal their recomputation from the stored events, and the KPIs read from
them (GMV per month, per WL in its own currency, completed orders, views and checkouts) equal an independent model.

Random event sequences over one pair (as ``tests/cp_server/risk/test_recompute_property.py``: both directions,
finalizations that agree or not, cancellations and compensations, replays, re-confirmations, random batch cuts),
with the CP's clock moved by random steps between batches so that buckets change hour and month, importers'
operational reports with views and checkouts in between, then in some examples the end of every grace period.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cp_server.rollups import kpis
from cp_server.rollups.buckets import month_of
from cp_server.rollups.recompute import check
from cp_server.slo.store import LATENCY_BOUNDS_S, OperationsStore
from tests.cp_server.risk.harness import KIND, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import operations_pb2, telemetry_pb2, telemetry_service_pb2
from xwl_runtime.clock import ManualClock

WLS = {"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "0.37")}
RATES = {"wl-a": Decimal("1"), "wl-b": Decimal("0.37")}
CURRENCY = {"wl-a": "XPY-A", "wl-b": "XPY-B"}

op = st.tuples(
    st.sampled_from(["confirm", "finalize", "cancel", "compensate", "replay", "reconfirm", "views"]),
    st.integers(0, 7),  # order index within the example
    st.sampled_from(["wl-a", "wl-b"]),  # exporter of the order (used when the order is first seen)
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2),
    st.booleans(),  # a finalization agrees with the exporter's amount (else it reports this op's amount)
)
STEPS_S = st.sampled_from([0, 60, 1800, 3600, 5 * 3600, 20 * 86400])
"""Clock steps between batches: same hour, next hour, a few hours, the next month."""


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[RiskCp]:
    clock = ManualClock(dt.datetime(2026, 1, 31, 22, 30, tzinfo=dt.UTC))
    async with running_risk_cp(pki, db_url, run_loops=False, clock=clock) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "1000000000")])
        yield cp


@dataclass
class _Order:
    exporter: str
    amount: Decimal
    confirmed: bool = False
    finalized: Decimal | None = None
    cancelled: bool = False
    compensated: bool = False

    def counts(self, settled: bool) -> bool:
        agreed = self.finalized == self.amount and not self.compensated
        return self.confirmed and not self.cancelled and (agreed or settled)


@dataclass
class _Month:
    gmv: Decimal = Decimal(0)
    by_wl: dict[str, Decimal] | None = None
    completed: int = 0
    views: int = 0
    checkouts: int = 0


def _counted(orders: dict[int, _Order], settled: bool) -> tuple[Decimal, dict[str, Decimal], int]:
    value, by_wl, n = Decimal(0), {"wl-a": Decimal(0), "wl-b": Decimal(0)}, 0
    for o in orders.values():
        if o.counts(settled):
            value += o.amount * RATES[o.exporter]
            by_wl[o.exporter] += o.amount
            n += 1
    return value, by_wl, n


async def _kpis(cp: RiskCp) -> dict[dt.datetime, kpis.MonthKpis]:
    async with cp.engine.connect() as conn:
        return {m.month: m for m in await kpis.months(conn)}


def _report(exporter: str, views: int, checkouts: int) -> telemetry_service_pb2.ReportOperationsRequest:
    counts = [0] * (len(LATENCY_BOUNDS_S) + 1)
    return telemetry_service_pb2.ReportOperationsRequest(peers=[operations_pb2.PeerOperations(
        exporter_wl=exporter, offer_views=views, attempts=checkouts, errors=checkouts,
        confirmation=operations_pb2.LatencyHistogram(bounds_seconds=LATENCY_BOUNDS_S, counts=counts))])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=30), cuts=st.lists(st.integers(1, 6), min_size=1, max_size=30),
       steps=st.lists(STEPS_S, min_size=1, max_size=30), settle=st.booleans())
async def test_rollups_equal_recomputation_and_model(
    cp: RiskCp, ops: list, cuts: list[int], steps: list[int], settle: bool  # type: ignore[type-arg]
) -> None:
    """Whatever the events, their batching and the hours and months they arrive in: stored rollups == rollups
    recomputed from the events, and GMV / per-WL GMV / completed / views / checkouts per month == the model."""
    clock = cp.ctx.clock
    assert isinstance(clock, ManualClock)
    nodes = {"wl-a": cp.node("wl-a"), "wl-b": cp.node("wl-b")}
    for node in nodes.values():
        node.honest_importer = False
    prefix = uuid.uuid4().hex[:8]
    orders: dict[int, _Order] = {}
    pending: dict[int, _Order] = {}  # the model's orders as the events sent so far make them
    sent: list[tuple[str, telemetry_pb2.SignedEvent, Callable[[], None]]] = []
    outgoing: list[tuple[str, telemetry_pb2.SignedEvent | None, Callable[[], None]]] = []
    reports: list[tuple[str, str, int, int]] = []
    for kind, idx, exporter, amount, agree in ops:
        order = orders.setdefault(idx, _Order(exporter, amount))
        exporter = order.exporter
        importer = "wl-b" if exporter == "wl-a" else "wl-a"
        oid = f"{prefix}-{idx}"
        if kind == "views":
            views, checkouts = int(amount) % 50, int(amount * 100) % 7
            outgoing.append((importer, None, lambda e=exporter, i=importer, v=views, c=checkouts:
                             reports.append((i, e, v, c))))
            continue
        if kind == "replay":
            if sent:
                outgoing.append(sent[int(amount) % len(sent)])
            continue
        reported = order.amount
        model = pending.setdefault(idx, _Order(exporter, order.amount))
        update: Callable[[], None]
        if kind in ("confirm", "reconfirm"):
            node, k = nodes[exporter], KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED
            update = lambda m=model: setattr(m, "confirmed", True)  # noqa: E731
        elif kind == "finalize":
            node, k = nodes[importer], KIND.LEDGER_EVENT_KIND_IMPORT_FINALIZED
            if order.finalized is None:
                order.finalized = order.amount if agree else amount
            reported = order.finalized
            update = lambda m=model, f=reported: setattr(m, "finalized", m.finalized or f)  # noqa: E731
        else:
            node = nodes[importer if kind == "compensate" else exporter]
            k = (KIND.LEDGER_EVENT_KIND_COMPENSATION if kind == "compensate"
                 else KIND.LEDGER_EVENT_KIND_ORDER_CANCELLED)
            field_name = "compensated" if kind == "compensate" else "cancelled"
            update = lambda m=model, f=field_name: setattr(m, f, True)  # noqa: E731
        event = node.event(k, order_id=oid, exporter=exporter, importer=importer, amount=str(reported),
                           currency=CURRENCY[exporter])
        item = (node.wl_id, node.sign(event), update)
        sent.append(item)
        outgoing.append(item)

    model_orders: dict[int, _Order] = {i: _Order(o.exporter, o.amount) for i, o in pending.items()}
    for i, o in pending.items():  # the lambdas above update ``pending``; the model starts from nothing sent
        model_orders[i] = o
        o.confirmed, o.finalized, o.cancelled, o.compensated = False, None, False, False
    start = clock.now()  # orders of earlier examples (same CP) settle before this one is measured
    await cp.parts.engine.settle_expired(start, start + dt.timedelta(days=1))
    before = await _kpis(cp)
    expected: dict[dt.datetime, _Month] = {}
    value, by_wl, n = _counted(model_orders, settled=False)
    store = OperationsStore(cp.engine)

    def account(settled: bool) -> None:
        nonlocal value, by_wl, n
        new_value, new_by_wl, new_n = _counted(model_orders, settled)
        m = expected.setdefault(month_of(clock.now()), _Month(by_wl={"wl-a": Decimal(0), "wl-b": Decimal(0)}))
        assert m.by_wl is not None
        m.gmv += new_value - value
        for wl in m.by_wl:
            m.by_wl[wl] += new_by_wl[wl] - by_wl[wl]
        m.completed += new_n - n
        value, by_wl, n = new_value, new_by_wl, new_n

    i = 0
    for cut, step in zip(itertools.cycle(cuts), itertools.cycle(steps), strict=False):
        if i >= len(outgoing):
            break
        batch = outgoing[i:i + cut]
        i += cut
        clock.advance(step)
        for wl in ("wl-a", "wl-b"):  # each node publishes its own events, in order
            own = [s for w, s, _ in batch if w == wl and s is not None]
            if own:
                resp = await nodes[wl].publish(*own)
                assert list(resp.rejected) == []
        for _, signed, update in batch:
            update()
            if signed is None:
                importer, exporter, views, checkouts = reports.pop()
                await store.ingest(importer, _report(exporter, views, checkouts), clock.now())
                m = expected.setdefault(month_of(clock.now()), _Month(by_wl={"wl-a": Decimal(0),
                                                                             "wl-b": Decimal(0)}))
                m.views += views
                m.checkouts += checkouts
        account(settled=False)
    if settle:  # every grace period ends: the exporter's side counts where the two sides did not agree
        clock.advance(3600)
        now = clock.now()
        await cp.parts.engine.settle_expired(now, now + dt.timedelta(days=1))
        account(settled=True)
    assert await check(cp.engine) == []

    after = await _kpis(cp)
    for month in sorted(expected.keys() | after.keys()):
        want = expected.get(month, _Month(by_wl={}))
        got, old = after.get(month), before.get(month)
        gmv = (got.gmv if got else Decimal(0)) - (old.gmv if old else Decimal(0))
        assert gmv == want.gmv, month
        for wl, amount in (want.by_wl or {}).items():
            have = (got.gmv_by_wl.get(wl, Decimal(0)) if got else Decimal(0)) - (
                old.gmv_by_wl.get(wl, Decimal(0)) if old else Decimal(0))
            assert have == amount, (month, wl)
        for name in ("completed", "views", "checkouts"):
            have_n = (getattr(got, name) if got else 0) - (getattr(old, name) if old else 0)
            assert have_n == getattr(want, name), (month, name)


async def test_an_order_that_stops_counting_subtracts_in_its_hour(cp: RiskCp) -> None:
    """Counted in one hour, cancelled by its exporter two hours later (next month): +value then -value, +1 then -1
    order, in the hours and in the months."""
    clock = cp.ctx.clock
    assert isinstance(clock, ManualClock)
    b, a = cp.node("wl-b"), cp.node("wl-a")  # wl-b exports to wl-a: the pair's b→a direction
    a.honest_importer = b.honest_importer = True
    confirmed = b.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="o-1", exporter="wl-b", importer="wl-a",
                        amount="100.00", currency="XPY-B")
    assert (await b.publish(confirmed)).accepted == 1
    counted_at = clock.now()
    clock.advance(2 * 3600)
    cancel = b.event(KIND.LEDGER_EVENT_KIND_ORDER_CANCELLED, order_id="o-1", exporter="wl-b", importer="wl-a")
    assert (await b.publish(cancel)).accepted == 1
    assert await check(cp.engine) == []
    async with cp.engine.connect() as conn:
        from cp_server.rollups import tables as t

        rows = {r.hour: r for r in (await conn.execute(t.hours.select().order_by(t.hours.c.hour))).all()}
        jan, feb = await kpis.months(conn)  # the clock starts at 22:30 on January 31st
    first, last = rows[counted_at.replace(minute=0, second=0, microsecond=0)], rows[clock.now().replace(
        minute=0, second=0, microsecond=0)]
    assert (Decimal(first.exports_ba), first.orders_ba, Decimal(first.amount_ba), first.events) == (
        Decimal("37"), 1, Decimal("100"), 2)
    assert (Decimal(last.exports_ba), last.orders_ba, Decimal(last.amount_ba), last.events) == (
        Decimal("-37"), -1, Decimal("-100"), 1)
    assert (jan.gmv, jan.completed, jan.gmv_by_wl) == (Decimal(37), 1, {"wl-b": Decimal(100)})
    assert (feb.gmv, feb.completed, feb.gmv_by_wl) == (Decimal(-37), -1, {"wl-b": Decimal(-100)})
