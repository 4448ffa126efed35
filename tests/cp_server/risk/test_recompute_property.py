"""Incremental balances equal the recomputation from stored events, and an independent model, after random runs.

Random event sequences over one pair: confirmations both ways, finalizations that agree with the exporter or
not, cancellations and compensations (also before the confirmation arrives), replays of events already sent,
second confirmations of an order under a new id, split into random batches, with amounts in currencies of
different reference rates; then, in some examples, the grace period of every order ends.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cp_server.risk.recompute import check, recompute
from tests.cp_server.risk.harness import KIND, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import analytics_service_pb2, telemetry_pb2

WLS = {"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "0.37")}
RATES = {"wl-a": Decimal("1"), "wl-b": Decimal("0.37")}
CURRENCY = {"wl-a": "XPY-A", "wl-b": "XPY-B"}

op = st.tuples(
    st.sampled_from(["confirm", "finalize", "cancel", "compensate", "replay", "reconfirm"]),
    st.integers(0, 7),  # order index within the example
    st.sampled_from(["wl-a", "wl-b"]),  # exporter of the order (used when the order is first seen)
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2),
    st.booleans(),  # a finalization agrees with the exporter's amount (else it reports this op's amount)
)


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[RiskCp]:
    async with running_risk_cp(pki, db_url, run_loops=False) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "1000000000")])
        yield cp


async def _net(cp: RiskCp) -> Decimal:
    resp = await cp.analytics().GetBalances(analytics_service_pb2.GetBalancesRequest(), timeout=10)
    return Decimal(resp.balances[0].net_delta)


@dataclass
class _Order:
    """The model's view of one order."""

    exporter: str
    amount: Decimal  # what the exporter confirms (every confirmation of the order says the same)
    confirmed: bool = False
    finalized: Decimal | None = None  # what the importer's first finalization said
    cancelled: bool = False
    compensated: bool = False

    def counts(self, settled: bool) -> bool:
        agreed = self.finalized == self.amount and not self.compensated
        return self.confirmed and not self.cancelled and (agreed or settled)


def _model(orders: dict[int, _Order], settled: bool) -> Decimal:
    return sum(((o.amount * RATES[o.exporter]) * (1 if o.exporter == "wl-a" else -1)
                for o in orders.values() if o.counts(settled)), Decimal(0))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=30), cuts=st.lists(st.integers(1, 6), min_size=1, max_size=30),
       settle=st.booleans())
async def test_incremental_equals_recompute(
    cp: RiskCp, ops: list, cuts: list[int], settle: bool  # type: ignore[type-arg]
) -> None:
    """The balance rule (both sides agree, or the exporter's side after the grace period) gives the same
    balance incrementally, recomputed, and in the model, whatever the order and batching of the events."""
    nodes = {"wl-a": cp.node("wl-a"), "wl-b": cp.node("wl-b")}
    for node in nodes.values():
        node.honest_importer = False  # the example says what each side reports
    prefix = uuid.uuid4().hex[:8]  # one server for all examples: fresh order ids per example
    orders: dict[int, _Order] = {}
    sent: list[tuple[str, telemetry_pb2.SignedEvent]] = []
    outgoing: list[tuple[str, telemetry_pb2.SignedEvent]] = []
    for kind, idx, exporter, amount, agree in ops:
        order = orders.setdefault(idx, _Order(exporter, amount))
        exporter = order.exporter
        importer = "wl-b" if exporter == "wl-a" else "wl-a"
        oid = f"{prefix}-{idx}"
        if kind == "replay":
            if sent:
                outgoing.append(sent[amount.to_integral_value().__int__() % len(sent)])
            continue
        reported = order.amount
        if kind in ("confirm", "reconfirm"):
            node, k = nodes[exporter], KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED
            order.confirmed = True
        elif kind == "finalize":
            node, k = nodes[importer], KIND.LEDGER_EVENT_KIND_IMPORT_FINALIZED
            if order.finalized is None:
                order.finalized = order.amount if agree else amount
            reported = order.finalized  # a second finalization repeats the first (else: a conflict)
        else:
            node = nodes[importer if kind == "compensate" else exporter]
            k = (KIND.LEDGER_EVENT_KIND_COMPENSATION if kind == "compensate"
                 else KIND.LEDGER_EVENT_KIND_ORDER_CANCELLED)
            order.compensated |= kind == "compensate"
            order.cancelled |= kind == "cancel"
        event = node.event(k, order_id=oid, exporter=exporter, importer=importer, amount=str(reported),
                           currency=CURRENCY[exporter])
        item = (node.wl_id, node.sign(event))
        sent.append(item)
        outgoing.append(item)

    start = dt.datetime.now(dt.UTC)
    await cp.parts.engine.settle_expired(start, start + dt.timedelta(days=1))  # earlier examples' orders
    before = await _net(cp)
    i = 0
    for cut in itertools.cycle(cuts):
        if i >= len(outgoing):
            break
        batch = outgoing[i:i + cut]
        i += cut
        for wl in ("wl-a", "wl-b"):  # each node publishes its own events, in order
            own = [s for w, s in batch if w == wl]
            if own:
                resp = await nodes[wl].publish(*own)
                assert list(resp.rejected) == []
    assert await _net(cp) - before == _model(orders, settled=False)
    assert await check(cp.engine) == []
    if settle:  # the grace period of every order ends: the exporter's side counts where they did not agree
        now = dt.datetime.now(dt.UTC)
        await cp.parts.engine.settle_expired(now, now + dt.timedelta(days=1))
        assert await _net(cp) - before == _model(orders, settled=True)
        assert await check(cp.engine) == []
    assert len(await recompute(cp.engine)) <= 1
