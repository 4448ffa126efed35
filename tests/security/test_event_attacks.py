"""Events say only what their emitter knows: attacks by a WL that holds its own genuine node key.

A real CP (risk component over mTLS with the production interceptor chain, real store on SQLite and PostgreSQL,
and the real policy store wired for pausing a pair) and two WL nodes signing with their own certificate keys. Each
attack asserts the precise status and ErrorInfo reason, and that nothing was counted: balances, stored events,
signals, alerts and the audit log stay as they were (only the refusal counter, and for a conflict the SECURITY
discrepancy, are recorded).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import grpc
import pytest
import sqlalchemy as sa

from cp_server.app import discrepancy_pauser
from cp_server.risk import tables as t
from cp_server.settings.risk import RiskSettings
from cp_server.signals.pair_status import PairStatusSignals
from cp_server.store.changes import ChangeRunner
from cp_server.store.pairs import PairPolicies
from cp_server.store.schema import pairs as pair_table
from tests.cp_server.identity.rpc import refused
from tests.cp_server.risk.harness import KIND, Node, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import analytics_pb2, analytics_service_pb2, telemetry_pb2
from xwl_runtime.clock import ManualClock

WLS = {"wl-a": ("XPY-A", "2"), "wl-b": ("XPY-B", "1")}  # one XPY-A is worth 2 in the reference unit
EXPORT, FINAL, CANCEL, COMP = (KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, KIND.LEDGER_EVENT_KIND_IMPORT_FINALIZED,
                               KIND.LEDGER_EVENT_KIND_ORDER_CANCELLED, KIND.LEDGER_EVENT_KIND_COMPENSATION)
PAUSE_VALUE = Decimal("50")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str, clock: ManualClock) -> AsyncIterator[RiskCp]:
    settings = RiskSettings(discrepancy_pause_value=PAUSE_VALUE)
    async with running_risk_cp(pki, db_url, clock=clock, run_loops=False, settings=settings) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "10000")])
        async with cp.engine.begin() as conn:  # as if created by a policy change (seed writes rows directly)
            await conn.execute(pair_table.update().values(changed_version=1))
        # The composition root's wiring: a discrepancy over the limit pauses the pair through the policy store,
        # whose status hook issues the PAIR_STATUS signal in the same transaction.
        changes = ChangeRunner(cp.engine, cp.audit, clock, notify_channel="xcwl_policy")
        policies = PairPolicies(changes, cp.ctx.settings)
        policies.add_status_hook(PairStatusSignals(cp.parts.store, cp.parts.hub).on_status_change)
        cp.parts.reconciler.pause_pair = discrepancy_pauser(policies)
        yield cp


@dataclass(frozen=True)
class Snapshot:
    """Everything an accepted event could have changed."""

    balances: list[tuple[str, str, str, str]]
    events: set[str]
    signals: int
    alerts: int
    audit: int


async def _snapshot(cp: RiskCp) -> Snapshot:
    resp = await cp.analytics().GetBalances(analytics_service_pb2.GetBalancesRequest(), timeout=10)
    async with cp.engine.connect() as conn:
        events = set((await conn.execute(sa.select(t.events.c.event_id))).scalars())
        signals = (await conn.execute(sa.select(sa.func.count()).select_from(t.signals))).scalar_one()
        alerts = (await conn.execute(sa.select(sa.func.count()).select_from(t.alerts))).scalar_one()
    return Snapshot([(b.wl_a, b.wl_b, b.exports_a_to_b, b.exports_b_to_a) for b in resp.balances], events,
                    int(signals), int(alerts), await cp.audit.count(cp.engine))


async def _net(cp: RiskCp) -> Decimal:
    resp = await cp.analytics().GetBalances(analytics_service_pb2.GetBalancesRequest(), timeout=10)
    return Decimal(next(b.net_delta for b in resp.balances if (b.wl_a, b.wl_b) == ("wl-a", "wl-b")))


async def _counter(cp: RiskCp, wl_id: str, reason: str) -> int:
    c = t.ingest_counters
    async with cp.engine.connect() as conn:
        found = (await conn.execute(sa.select(c.c.count).where(c.c.wl_id == wl_id, c.c.reason == reason))).first()
    return int(found[0]) if found else 0


async def _discrepancies(cp: RiskCp) -> list[analytics_pb2.Discrepancy]:
    resp = await cp.analytics().ListDiscrepancies(analytics_service_pb2.ListDiscrepanciesRequest(), timeout=10)
    return list(resp.discrepancies)


async def _alerts(cp: RiskCp) -> list[analytics_pb2.Alert]:
    return list((await cp.analytics().ListAlerts(analytics_service_pb2.ListAlertsRequest(), timeout=10)).alerts)


async def _status(cp: RiskCp) -> str:
    async with cp.engine.connect() as conn:
        return str((await conn.execute(sa.select(pair_table.c.status))).scalar_one())


def _sale(node: Node, kind: int, order: str, amount: str, quantity: int = 1, **kw: str) -> telemetry_pb2.LedgerEvent:
    return node.event(kind, order_id=order, exporter="wl-a", importer="wl-b", amount=amount, currency="XPY-A",
                      quantity=quantity, correlation_id=f"cid-{order}", **kw)


async def _agreed_order(cp: RiskCp, order: str, amount: str = "150.00") -> None:
    a = cp.node("wl-a")  # the harness's honest importer finalizes the same sale first
    resp = await a.publish(_sale(a, EXPORT, order, amount))
    assert resp.accepted == 1


async def _grace_passes(cp: RiskCp, clock: ManualClock) -> int:
    clock.advance(RiskSettings().reconciliation_grace.total_seconds() + 1)
    return await cp.parts.reconciler.run_once()


# --- owner of the fact -----------------------------------------------------------------------------------------


async def test_importer_cannot_cancel_the_exporters_confirmed_export(cp: RiskCp) -> None:
    """The importer (in deficit) signs ORDER_CANCELLED for the exporter's confirmed export to erase its imports."""
    await _agreed_order(cp, "o1")
    assert await _net(cp) == Decimal("300.00")
    before = await _snapshot(cp)
    b = cp.node("wl-b")
    forged = _sale(b, CANCEL, "o1", "150.00")
    honest = _sale(b, FINAL, "o2", "10.00")  # a good event in the same batch is not stored either
    err = await refused(b.publish(honest, forged))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "EVENT_NOT_OWNED")
    assert err.metadata == {"index": "1", "event_id": forged.event_id}
    assert await _snapshot(cp) == before
    assert await _counter(cp, "wl-b", "EVENT_NOT_OWNED") == 1


async def test_exporter_cannot_finalize_its_own_export_for_the_importer(cp: RiskCp) -> None:
    """The exporter signs the importer's IMPORT_FINALIZED (to make a phantom export count at once)."""
    before = await _snapshot(cp)
    a = cp.node("wl-a")
    a.honest_importer = False
    err = await refused(a.publish(_sale(a, FINAL, "o1", "150.00")))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "EVENT_NOT_OWNED")
    err = await refused(a.publish(_sale(a, COMP, "o1", "150.00")))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "EVENT_NOT_OWNED")
    assert await _snapshot(cp) == before


# --- canonical amounts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["1e5", "1.001", "40.000", "+5", "007.00", "-5.00", "0.00", "1E+2", " 5",
                                    "NaN", "Infinity", "1" * 31, "٣", "1٣"])
async def test_non_canonical_amounts_are_refused(cp: RiskCp, amount: str) -> None:
    """A phantom EXPORT_CONFIRMED with an amount the nodes would never write (XPY-A has 2 decimals)."""
    before = await _snapshot(cp)
    a = cp.node("wl-a")
    a.honest_importer = False
    err = await refused(a.publish(_sale(a, EXPORT, "phantom", amount)))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_NOT_CANONICAL")
    assert await _snapshot(cp) == before
    assert await _counter(cp, "wl-a", "AMOUNT_NOT_CANONICAL") == 1


async def test_non_canonical_importer_amount_and_bad_quantity_are_refused(cp: RiskCp) -> None:
    before = await _snapshot(cp)
    b = cp.node("wl-b")
    err = await refused(b.publish(_sale(b, FINAL, "o1", "1e2")))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_NOT_CANONICAL")
    for quantity in (0, -3):
        err = await refused(b.publish(_sale(b, FINAL, "o1", "10.00", quantity=quantity)))
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_QUANTITY")
    assert await _snapshot(cp) == before


async def test_phantom_export_does_not_count_until_the_grace_period_then_is_flagged(
    cp: RiskCp, clock: ManualClock
) -> None:
    """A canonical but invented EXPORT_CONFIRMED the importer never reports: no balance move, no alert or DISABLE
    on the victim within the grace period; then it counts as the exporter's side and is flagged with an alert
    (a missing side alerts; only contradicting sides pause the pair)."""
    a = cp.node("wl-a")
    a.honest_importer = False
    resp = await a.publish(_sale(a, EXPORT, "phantom", "9000.00"))  # 18,000 in the reference unit: > limit
    assert resp.accepted == 1
    assert await _net(cp) == 0 and (await _snapshot(cp)).signals == 0 and await _alerts(cp) == []
    assert await cp.parts.reconciler.run_once() == 0
    assert await _net(cp) == 0

    assert await _grace_passes(cp, clock) == 1
    assert await _net(cp) == Decimal("18000.00")
    (found,) = await _discrepancies(cp)
    assert (found.order_id, found.reason, found.category, found.export_amount, found.import_amount,
            found.disputed_value) == ("phantom", "IMPORT_NOT_FINALIZED", "RECONCILIATION", "9000.00", "", "18000.00")
    assert "IMPORT_NOT_FINALIZED" in {x.reason for x in await _alerts(cp) if x.open}
    assert await _status(cp) == "ACTIVE"


# --- an event id never changes meaning ------------------------------------------------------------------------


async def test_conflicting_resend_is_refused_and_recorded_identical_resend_is_a_duplicate(cp: RiskCp) -> None:
    await _agreed_order(cp, "o1", "150.00")
    a = cp.node("wl-a")
    a.honest_importer = False
    original = _sale(a, EXPORT, "o2", "20.00")
    assert (await a.publish(original)).accepted == 1
    resp = await a.publish(original)  # identical (signed again: another signature, the same payload)
    assert (resp.accepted, resp.duplicates) == (0, 1)
    before = await _snapshot(cp)

    changed = telemetry_pb2.LedgerEvent()
    changed.CopyFrom(original)
    changed.amount.amount = "2000.00"
    err = await refused(a.publish(changed))
    assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EVENT_CONFLICT")
    assert err.metadata == {"index": "0", "event_id": original.event_id}
    # The same order confirmed again under a new id with another amount is a conflict too.
    err = await refused(a.publish(_sale(a, EXPORT, "o1", "1500.00")))
    assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EVENT_CONFLICT")

    after = await _snapshot(cp)
    assert (after.balances, after.events, after.signals, after.alerts) == (
        before.balances, before.events, before.signals, before.alerts)
    assert after.audit == before.audit + 2  # the two security discrepancies, nothing else
    found = {(d.order_id, d.reason): d for d in await _discrepancies(cp)}
    assert set(found) == {("o2", "EVENT_CONFLICT"), ("o1", "EVENT_CONFLICT")}
    first = found[("o2", "EVENT_CONFLICT")]
    assert (first.category, first.event_id, first.reporter_wl) == ("SECURITY", original.event_id, "wl-a")
    assert await _counter(cp, "wl-a", "EVENT_CONFLICT") == 2
    await cp.parts.reconciler.run_once()
    assert {x.reason for x in await _alerts(cp)} == {"EVENT_CONFLICT"}
    assert await _status(cp) == "ACTIVE"  # security findings alert; only value in dispute pauses


# --- the two sides reconciled -------------------------------------------------------------------------------


@pytest.mark.parametrize(("imported", "quantity", "disputed", "paused"), [
    ("140.00", 1, "20.00", False),   # 10 XPY-A apart = 20 in the reference unit: under the pause value
    ("100.00", 1, "100.00", True),   # 50 apart = 100: over it
    ("150.00", 2, "300.00", True),   # same amount, other quantity: the whole order is in dispute
])
async def test_amount_mismatch_is_a_discrepancy_with_an_alert_and_pauses_over_the_value(
    cp: RiskCp, imported: str, quantity: int, disputed: str, paused: bool
) -> None:
    a, b = cp.node("wl-a"), cp.node("wl-b")
    a.honest_importer = False
    assert (await a.publish(_sale(a, EXPORT, "o1", "150.00"))).accepted == 1
    assert (await b.publish(_sale(b, FINAL, "o1", imported, quantity=quantity))).accepted == 1
    assert await _net(cp) == 0  # the sides disagree: nothing counts before the grace period
    assert await cp.parts.reconciler.run_once() == 1  # both sides have spoken: no need to wait
    (found,) = await _discrepancies(cp)
    assert (found.reason, found.export_amount, found.import_amount, found.export_quantity, found.import_quantity,
            found.disputed_value) == ("AMOUNT_MISMATCH", "150.00", imported, 1, quantity, disputed)
    (alert,) = await _alerts(cp)
    assert (alert.reason, alert.wl_a, alert.wl_b, alert.correlation_id) == ("AMOUNT_MISMATCH", "wl-a", "wl-b",
                                                                            "cid-o1")
    assert await _status(cp) == ("PAUSED" if paused else "ACTIVE")
    async with cp.engine.connect() as conn:
        kinds = list((await conn.execute(sa.select(t.signals.c.kind))).scalars())
    assert kinds == (["PAIR_STATUS"] if paused else [])
    assert await cp.parts.reconciler.run_once() == 0 and len(await _alerts(cp)) == 1  # once


async def test_one_sided_cancellation_by_the_exporter_is_flagged(cp: RiskCp, clock: ManualClock) -> None:
    """The exporter cancels an order the importer finalized and never compensated (to free room under the
    limit): the exporter owns its cancellation, so the balance follows it, and the gap is flagged."""
    await _agreed_order(cp, "o1", "150.00")
    a = cp.node("wl-a")
    assert (await a.publish(_sale(a, CANCEL, "o1", "150.00"))).accepted == 1
    assert await _net(cp) == 0
    assert await cp.parts.reconciler.run_once() == 0  # the importer's compensation may still be in flight
    assert await _grace_passes(cp, clock) == 1
    (found,) = await _discrepancies(cp)
    assert (found.reason, found.disputed_value) == ("ONE_SIDED_CANCELLATION", "300.00")
    assert [x.reason for x in await _alerts(cp)] == ["ONE_SIDED_CANCELLATION"]
    assert await _status(cp) == "PAUSED"
    # The importer's compensation joins it: resolved, and its alert closed (the pause stays for an operator).
    b = cp.node("wl-b")
    assert (await b.publish(_sale(b, COMP, "o1", "150.00"))).accepted == 1
    assert await _discrepancies(cp) == []
    assert [x.open for x in await _alerts(cp)] == [False]
    assert await _status(cp) == "PAUSED"


async def test_one_sided_compensation_by_the_importer_does_not_erase_the_export(
    cp: RiskCp, clock: ManualClock
) -> None:
    """The importer signs COMPENSATION (its own kind) for an export the exporter never cancelled."""
    await _agreed_order(cp, "o1", "150.00")
    b = cp.node("wl-b")
    assert (await b.publish(_sale(b, COMP, "o1", "150.00"))).accepted == 1
    assert await _grace_passes(cp, clock) == 1
    assert await _net(cp) == Decimal("300.00")  # the exporter's side counts
    (found,) = await _discrepancies(cp)
    assert (found.reason, found.disputed_value) == ("ONE_SIDED_CANCELLATION", "300.00")
    assert "ONE_SIDED_CANCELLATION" in {x.reason for x in await _alerts(cp)}
