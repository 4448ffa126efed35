"""A pilot direction sells only to its cohort and never passes its caps: under 100 concurrent checkouts per
importer, on SQLite and on PostgreSQL, and with the CP stopped (the caps are in the nodes' views).

A real CP, the exporter wl-a and two importers, each direction in PILOT with an allow-list of ten members, a
maximum order value of 30 and a daily value cap of 250 (orders are worth 10 in the exporter's currency, so
exactly 25 fit a day). wl-b is an ordinary importer: it refuses at checkout what it knows is over. wl-c's own
check is switched off (an importer one release behind, or one that wants more than its due), so every one of
its orders reaches the exporter, whose count inside the PlaceOrder transaction is what must hold.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import grpc
import sqlalchemy as sa

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, storefront
from tests.wl_node.conftest import eventually
from tests.wl_node.rollout.helpers import RPC, capabilities_reported, rollout_stub
from tests.wl_node.test_cross_wl_trade import EXPORTER, World, _publish, _ready_to_buy, world
from wl_node.orders.tables import orders as orders_table
from wl_node.rollout.tables import daily_usage
from xporty.cp.v1 import rollout_pb2, rollout_service_pb2
from xporty.node.v1 import storefront_pb2, storefront_service_pb2
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity

COHORT = [f"member-{i}" for i in range(10)]
COMPLETED = storefront_pb2.CHECKOUT_STATUS_COMPLETED
FAILED = storefront_pb2.CHECKOUT_STATUS_FAILED
PENDING = storefront_pb2.CHECKOUT_STATUS_PENDING
Outcome = storefront_pb2.Checkout | tuple[grpc.StatusCode, str, dict[str, str]]


class _NoImporterCheck:
    """An importer that sends every order, whatever its rollout stage says."""

    async def admit(self, exporter_wl: str, buyer_hash: str, value: Decimal) -> None:
        return None


async def _checkout(w: World, importer: str, key: str, buyer: str, quantity: int = 1) -> Outcome:
    """One member's checkout, retried with the same key until decided (bounded by a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    async with storefront(w.pki, w.nodes[importer].port, Identity.app(importer, "shop")) as api:
        request = storefront_service_pb2.CheckoutRequest(
            idempotency_key=key, imported_offer_id=f"{EXPORTER}:o-1", quantity=quantity, buyer_reference=buyer)
        while loop.time() < deadline:
            try:
                checkout = (await api.Checkout(request, timeout=RPC)).checkout
            except grpc.aio.AioRpcError as err:
                if err.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE):
                    await asyncio.sleep(0.05)
                    continue
                remote = decode_rpc_error(err)
                return (remote.code, remote.reason, dict(remote.metadata))
            if checkout.status != PENDING:
                return checkout
            await asyncio.sleep(0.05)
    raise AssertionError(f"checkout {key} not decided within 60 s")


async def _confirmed_value(w: World, importer: str) -> Decimal:
    async with w.nodes[EXPORTER].engine.connect() as conn:
        totals = (await conn.execute(sa.select(orders_table.c.total).where(
            orders_table.c.importer_wl == importer, orders_table.c.status == "CONFIRMED"))).scalars().all()
    return sum((Decimal(t) for t in totals), Decimal(0))


def _refused(outcome: Outcome, reason: str) -> dict[str, str]:
    assert isinstance(outcome, tuple), outcome
    code, got, metadata = outcome
    assert (code, got) == (grpc.StatusCode.FAILED_PRECONDITION, reason), outcome
    return metadata


async def test_a_pilot_sells_only_to_its_cohort_and_never_passes_its_daily_cap(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-b", "wl-c"]) as w:
        await capabilities_reported(w, EXPORTER, "wl-b", "wl-c")
        await _publish(w, "o-1", "10.00", 1000)
        for importer in ("wl-b", "wl-c"):
            await _ready_to_buy(w, importer, f"{EXPORTER}:o-1")
        checkouts_c = w.nodes["wl-c"].checkouts
        assert checkouts_c is not None
        checkouts_c.service._rollout = _NoImporterCheck()  # type: ignore[assignment]

        async with rollout_stub(w) as ops:
            version = 0
            for importer in ("wl-b", "wl-c"):
                done = await ops.ConfigureRollout(rollout_service_pb2.ConfigureRolloutRequest(
                    exporter_wl=EXPORTER, importer_wl=importer, stage=rollout_pb2.ROLLOUT_STAGE_PILOT,
                    pilot=rollout_service_pb2.RolloutLimitsInput(
                        cohort_buyer_references=COHORT, max_order_value="30", daily_value_cap="250"),
                    expansion=rollout_service_pb2.RolloutLimitsInput(cohort_basis_points=5000,
                                                                     daily_value_cap="5000"),
                    reason="pilot"), timeout=RPC)
                assert done.rollout.stage == rollout_pb2.ROLLOUT_STAGE_PILOT
                assert len(done.rollout.limits.cohort_buyer_hashes) == 10
                assert "member-0" not in str(done.rollout)  # hashes only, never references
                version = done.version
        await eventually(lambda: all(n.state.version >= version for n in w.nodes.values()), timeout=10)

        # Outside the cohort: refused at the importer before anything is stored, and at the exporter too.
        meta = _refused(await _checkout(w, "wl-b", "out-b", "outsider"), "ROLLOUT_NOT_IN_COHORT")
        assert (meta["stage"], meta["exporter_wl"], meta["importer_wl"]) == ("PILOT", EXPORTER, "wl-b")
        outsider_c = await _checkout(w, "wl-c", "out-c", "outsider")
        assert isinstance(outsider_c, storefront_pb2.Checkout)
        assert (outsider_c.status, outsider_c.reason) == (FAILED, "ROLLOUT_NOT_IN_COHORT")
        # Above the maximum order value (4 × 10 > 30).
        meta = _refused(await _checkout(w, "wl-b", "big-b", COHORT[0], quantity=4), "ROLLOUT_ORDER_VALUE_CAP")
        assert (meta["cap"], meta["limit"], meta["order_value"], meta["headroom"]) == (
            "max_order_value", "30", "40", "30")
        big_c = await _checkout(w, "wl-c", "big-c", COHORT[0], quantity=4)
        assert isinstance(big_c, storefront_pb2.Checkout) and big_c.reason == "ROLLOUT_ORDER_VALUE_CAP"
        assert await _confirmed_value(w, "wl-b") == 0 and await _confirmed_value(w, "wl-c") == 0

        # 100 concurrent checkouts per importer, all in the cohort: exactly 25 orders of 10 fit the cap of 250.
        results = await asyncio.gather(*(
            _checkout(w, importer, f"{importer}-{i}", COHORT[i % len(COHORT)])
            for i in range(100) for importer in ("wl-b", "wl-c")))
        for importer in ("wl-b", "wl-c"):
            mine = results[("wl-b", "wl-c").index(importer)::2]
            completed = [r for r in mine if isinstance(r, storefront_pb2.Checkout) and r.status == COMPLETED]
            refused = [r for r in mine if not (isinstance(r, storefront_pb2.Checkout) and r.status == COMPLETED)]
            assert len(completed) == 25, (importer, [r if isinstance(r, tuple) else r.reason for r in refused][:5])
            for r in refused:  # refused at the importer (wl-b) or by the exporter (both)
                reason = r[1] if isinstance(r, tuple) else r.reason
                assert reason == "ROLLOUT_DAILY_CAP", (importer, r)
            assert await _confirmed_value(w, importer) == Decimal(250)
        async with w.nodes[EXPORTER].engine.connect() as conn:
            used = dict((await conn.execute(sa.select(daily_usage.c.importer_wl, daily_usage.c.used_e8))).all())
        assert used == {"wl-b": 250 * 10**8, "wl-c": 250 * 10**8}

        # The CP stops: both nodes still enforce the caps from their views.
        await w.cp.stop(0)
        meta = _refused(await _checkout(w, "wl-b", "after-b", COHORT[1]), "ROLLOUT_DAILY_CAP")
        assert (meta["stage"], meta["cap"], meta["limit"], meta["used"], meta["headroom"]) == (
            "PILOT", "daily_value_cap", "250", "250", "0")
        _refused(await _checkout(w, "wl-b", "after-out-b", "outsider"), "ROLLOUT_NOT_IN_COHORT")
        after_c = await _checkout(w, "wl-c", "after-c", COHORT[1])
        assert isinstance(after_c, storefront_pb2.Checkout)
        assert (after_c.status, after_c.reason) == (FAILED, "ROLLOUT_DAILY_CAP")
        assert await _confirmed_value(w, "wl-c") == Decimal(250)
