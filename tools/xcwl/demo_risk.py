"""Demo step for risk: one pair driven across 80% and 100% of a small imbalance limit, and back.

wl-c buys wl-a's offer a-3 (10.00 XPY-A = 10 in the reference unit) one unit at a time under a limit set just above
the pair's current balance. After each purchase the step waits until the CP's balance (fed by the nodes' signed
ledger events) equals what the two nodes' stores say, then prints utilisation and level: the ALERT at ≥ 80%, then
either the CP's DISABLE signal (> 100%) or — when the nodes' local guard refuses the order that would pass the
limit first — the guard's refusal, after which the operator lowers the limit and the CP disables the deficit
direction. The importer's next checkout is refused. Recovery is the compensation the signal's plan asks for: wl-a
buys from wl-c (reverse trade) until the pair is below the re-enable level, the CP sends ENABLE, and wl-c buys
again. Last, the incremental balances are checked against a recomputation from the stored events.

The step needs the nodes' event shipper (``wl_node/telemetry/``, wired in ``wl_node/app.py``); without it the CP
sees no trades, and the step prints ``skipped: …`` instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import sqlalchemy as sa

from cp_server.risk.recompute import check as recompute_check
from wl_node.orders.tables import orders as orders_table
from xcwl_sdk import ApiError
from xporty.cp.v1 import admin_service_pb2, analytics_pb2, signal_pb2
from xporty.node.v1 import storefront_pb2

from .demo_trade import OFFERS, buy, catalog
from .demo_world import REFERENCE_RATE, Demo, eventually
from .errors import CliError
from .ops_client import OpsClient
from .render_trade import alerts_table, balances_table, checkout_text, percent, signal_text

EXPORTER, IMPORTER = "wl-a", "wl-c"
RISK_OFFER = next(o for o in OFFERS if o.offer_id == "a-3")
REVERSE_OFFER = next(o for o in OFFERS if o.offer_id == "c-1")
HEADROOM = Decimal(45)
"""The limit is set this far above the pair's current balance: 4 purchases cross 80%, the 5th would pass 100%."""
MAX_PURCHASES = 8
EVENTS_TIMEOUT_S = 15.0
SIGNAL_TIMEOUT_S = 20.0
"""A limit change is re-evaluated by the CP's reconciliation loop (every 5 s), so signals after one take a while."""
ENFORCE_TIMEOUT_S = 10.0
REENABLE = Decimal("0.60")
"""The CP's default re-enable threshold (``RiskSettings.reenable_threshold``)."""


@dataclass(frozen=True)
class PairView:
    """The pair wl-a/wl-c in the reference unit: exports each way."""

    a_to_c: Decimal
    c_to_a: Decimal

    @property
    def net(self) -> Decimal:
        return self.a_to_c - self.c_to_a


async def _exported(demo: Demo, exporter: str, importer: str) -> Decimal:
    """Reference value of the confirmed orders ``exporter`` holds for ``importer`` (from its store)."""
    o = orders_table
    async with demo.store(demo.node_db(exporter)) as engine, engine.connect() as conn:
        totals = (await conn.execute(sa.select(o.c.total).where(
            o.c.importer_wl == importer, o.c.status == "CONFIRMED"))).scalars().all()
    return sum((Decimal(t) for t in totals), Decimal(0)) * Decimal(REFERENCE_RATE[exporter])


async def nodes_view(demo: Demo) -> PairView:
    return PairView(await _exported(demo, EXPORTER, IMPORTER), await _exported(demo, IMPORTER, EXPORTER))


async def cp_row(demo: Demo, client: OpsClient | None = None) -> analytics_pb2.PairBalance:
    if client is None:
        async with demo.client() as fresh:
            return await cp_row(demo, fresh)
    for b in await client.balances():
        if (b.wl_a, b.wl_b) == (EXPORTER, IMPORTER):
            return b
    raise CliError(f"the CP reports no balance for {EXPORTER}/{IMPORTER}")


async def settled(demo: Demo) -> analytics_pb2.PairBalance:
    """Wait until the CP's balance equals the nodes' stores (their events arrived); the CP's row then."""
    want = await nodes_view(demo)
    row: list[analytics_pb2.PairBalance] = []
    async with demo.client() as client:  # one channel for the whole poll

        async def arrived() -> bool:
            row[:] = [await cp_row(demo, client)]
            return Decimal(row[0].exports_a_to_b) == want.a_to_c and Decimal(row[0].exports_b_to_a) == want.c_to_a

        await eventually(arrived, f"the CP to receive the nodes' ledger events ({EXPORTER}->{IMPORTER} "
                                  f"{want.a_to_c}, {IMPORTER}->{EXPORTER} {want.c_to_a})", EVENTS_TIMEOUT_S)
    return row[0]


async def find_signal(demo: Demo, kind: int, after: int) -> signal_pb2.Signal | None:
    async with demo.client() as client:
        for s in await client.signals(page_size=50):
            if s.sequence > after and s.kind == kind and (s.exporter_wl, s.importer_wl) == (EXPORTER, IMPORTER):
                return s
    return None


async def wait_signal(demo: Demo, kind: int, after: int, what: str) -> signal_pb2.Signal:
    found: list[signal_pb2.Signal] = []

    async def issued() -> bool:
        s = await find_signal(demo, kind, after)
        found[:] = [s] if s else []
        return bool(found)

    await eventually(issued, what, SIGNAL_TIMEOUT_S)
    return found[0]


async def set_limit(demo: Demo, limit: Decimal, reason: str) -> None:
    async with demo.client() as client:
        resp = await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
            wl_a=EXPORTER, wl_b=IMPORTER, imbalance_limit=str(limit), reason=reason))
    await demo.wait_applied(resp.version)


def line(n: int, what: str, row: analytics_pb2.PairBalance) -> str:
    return (f"purchase {n}: {what}; CP: {EXPORTER}->{IMPORTER} {row.exports_a_to_b}, net {row.net_delta} of limit "
            f"{row.limit} = {percent(row.utilisation)}, level {analytics_pb2.AlertLevel.Name(row.level)[12:]}")


async def offer_state(demo: Demo, wl_id: str, imported_id: str) -> storefront_pb2.ImportedOffer | None:
    return next((o for o in await catalog(demo, wl_id) if o.imported_offer_id == imported_id), None)


async def risk_scenario(demo: Demo) -> None:
    start_row = await settled(demo)
    async with demo.client() as client:
        last_seq = max((s.sequence for s in await client.signals(page_size=1)), default=0)
    limit = Decimal(start_row.net_delta).copy_abs() + HEADROOM
    await set_limit(demo, limit, "demo: a small imbalance limit")
    demo.out(f"{EXPORTER}/{IMPORTER}: balance {start_row.net_delta} after the burst; the operator sets the limit "
             f"to {limit} (reference unit); every node applied it. {IMPORTER} now buys {RISK_OFFER.imported_id} "
             f"({RISK_OFFER.price} XPY-A = {RISK_OFFER.price} in the reference unit) one at a time:")

    disable: signal_pb2.Signal | None = None
    refused = ""
    async with demo.app(IMPORTER) as app:
        for n in range(1, MAX_PURCHASES + 1):
            try:
                done = await buy(app, RISK_OFFER.imported_id, f"risk-{n}")
            except ApiError as err:
                refused = str(err)
            else:
                if done.status != storefront_pb2.CHECKOUT_STATUS_COMPLETED:
                    refused = checkout_text(done)
            row = await settled(demo)
            demo.out(line(n, f"REFUSED ({refused})" if refused else "completed", row))
            disable = await find_signal(demo, signal_pb2.SIGNAL_KIND_DISABLE, last_seq)
            if refused or disable:
                break
    async with demo.client() as client:
        alerts = [a for a in await client.alerts(open_only=True) if (a.wl_a, a.wl_b) == (EXPORTER, IMPORTER)]
    demo.out(f"open alert(s) on {EXPORTER}/{IMPORTER}:\n{alerts_table(alerts)}" if alerts
             else "no open alert (unexpected)")

    if disable is None:
        row = await cp_row(demo)
        lowered = max(Decimal(row.net_delta).copy_abs() - Decimal(5), Decimal(1))
        demo.out(f"the local guard held the pair at its limit; the operator lowers the limit to {lowered}, so the "
                 f"CP's balance stands above 100% (re-evaluated by its reconciliation loop)")
        await set_limit(demo, lowered, "demo: limit lowered below the balance")
        disable = await wait_signal(demo, signal_pb2.SIGNAL_KIND_DISABLE, last_seq, "the CP's DISABLE signal")
    demo.out(signal_text(disable))

    start = time.monotonic()
    try:
        await eventually(lambda: _unavailable(demo), "", ENFORCE_TIMEOUT_S)
        demo.out(f"{IMPORTER}'s catalog shows {RISK_OFFER.imported_id} unavailable "
                 f"{(time.monotonic() - start) * 1000:.0f} ms after the signal was listed")
    except CliError:  # the checkout below is the proof that matters; the catalog mark is a courtesy to members
        demo.out(f"{IMPORTER}'s catalog still lists {RISK_OFFER.imported_id} as available")
    async with demo.app(IMPORTER) as app:
        try:
            after = await buy(app, RISK_OFFER.imported_id, "risk-after-disable")
        except ApiError as err:
            demo.out(f"{IMPORTER}'s next checkout is refused: {err}")
        else:
            if after.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED:
                raise CliError(f"a checkout completed on a disabled direction: {checkout_text(after)}")
            demo.out(f"{IMPORTER}'s next checkout is refused: {checkout_text(after)}")

    await recover(demo, disable)


async def _unavailable(demo: Demo) -> bool:
    offer = await offer_state(demo, IMPORTER, RISK_OFFER.imported_id)
    return offer is None or not offer.available


async def _available(demo: Demo) -> bool:
    offer = await offer_state(demo, IMPORTER, RISK_OFFER.imported_id)
    return offer is not None and offer.available


async def recover(demo: Demo, disable: signal_pb2.Signal) -> None:
    """Compensate with reverse trade until below the re-enable level, then show ENABLE and trade resuming."""
    row = await settled(demo)
    net, limit = Decimal(row.net_delta), Decimal(row.limit)
    unit = Decimal(REVERSE_OFFER.price) * Decimal(REFERENCE_RATE[REVERSE_OFFER.wl_id])
    needed = net - REENABLE * limit  # reverse value that brings the net to the re-enable level
    quantity = int((needed / unit).to_integral_value(rounding=ROUND_FLOOR)) + 1
    ranked = [o.offer_id for o in disable.plan.offers]
    rank = (f"offer #{ranked.index(REVERSE_OFFER.offer_id) + 1} of the plan" if REVERSE_OFFER.offer_id in ranked
            else "not in the plan")
    demo.out(f"recovery by reverse trade: {EXPORTER} buys {quantity} x {REVERSE_OFFER.imported_id} ({rank}; "
             f"value {quantity * unit} in the reference unit; the plan asked for at least "
             f"{disable.plan.required_reference_value}, below {percent(str(REENABLE))} re-enables)")
    async with demo.app(EXPORTER) as app:
        back = await buy(app, REVERSE_OFFER.imported_id, "risk-reverse", quantity=quantity)
    if back.status != storefront_pb2.CHECKOUT_STATUS_COMPLETED:
        raise CliError(f"the reverse trade did not complete: {checkout_text(back)}")
    row = await settled(demo)
    demo.out(f"reverse trade completed; CP: net {row.net_delta} of limit {row.limit} = {percent(row.utilisation)}")
    enable = await wait_signal(demo, signal_pb2.SIGNAL_KIND_ENABLE, disable.sequence, "the CP's ENABLE signal")
    demo.out(signal_text(enable))
    await eventually(lambda: _available(demo), f"{IMPORTER} to re-enable {RISK_OFFER.imported_id}", ENFORCE_TIMEOUT_S)
    async with demo.app(IMPORTER) as app:
        again = await buy(app, RISK_OFFER.imported_id, "risk-after-enable")
    demo.out(f"{IMPORTER} buys again: {checkout_text(again)}")
    if again.status != storefront_pb2.CHECKOUT_STATUS_COMPLETED:
        raise CliError("trade did not resume after ENABLE")
    await settled(demo)
    async with demo.client() as client:
        balances = await client.balances()
    demo.out(f"xcwl report balance:\n{balances_table(balances)}")
    async with demo.store(demo.cp_db) as engine:
        mismatches = await recompute_check(engine)
    if mismatches:
        raise CliError(f"incremental balances differ from the recomputation: {mismatches}")
    demo.out("xcwl risk check: incremental balances equal the recomputation from the stored events")
