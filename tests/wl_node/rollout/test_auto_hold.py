"""An injected slow exporter breaches a direction's SLO: the CP holds its rollout stage (and steps it back when its
policy says so), raises an ALERT signal and the ``rollout.held`` webhook; promotion resumes only by operator action.

A real CP and real nodes: the importer's operational reports (``ReportOperations``) carry the confirmation
latencies the CP judges, exactly as in production; the exporter's PlaceOrder is slowed to 0.7 s (target p99 0.5 s).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from cp_server.risk import tables as risk_tables
from cp_server.settings.rollout import RolloutConfig
from cp_server.webhooks.tables import deliveries
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, db_factory
from tests.wl_node.conftest import eventually
from tests.wl_node.rollout.helpers import RPC, capabilities_reported, rollout_stub
from tests.wl_node.rollout.test_pilot_caps import _checkout
from tests.wl_node.test_cross_wl_trade import EXPORTER, _publish, _ready_to_buy, world
from wl_node.orders.desk import OrderDesk
from xporty.cp.v1 import (
    admin_service_pb2,
    rollout_pb2,
    rollout_service_pb2,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)
from xporty.node.v1 import storefront_pb2
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

SLOW_S = 0.7
FAST_HOLD = RolloutConfig(hold_check_interval=dt.timedelta(seconds=0.2), hold_min_samples=5)


async def test_a_slow_exporter_holds_the_stage_alerts_and_only_an_operator_resumes(
    tmp_path: Path, pki: PkiFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db_factory("sqlite", tmp_path) as dbs:
        await _scenario(tmp_path, pki, dbs, monkeypatch)


async def _scenario(tmp_path: Path, pki: PkiFixture, dbs: DbFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    async with world(tmp_path, pki, dbs, ["wl-b"], cp_settings={"rollout": FAST_HOLD}) as w:
        await capabilities_reported(w, EXPORTER, "wl-b")
        await _publish(w, "o-1", "10.00", 1000)
        await _ready_to_buy(w, "wl-b", f"{EXPORTER}:o-1")
        async with secure_channel(f"127.0.0.1:{w.cp.port}", w.pki.material(Identity.ops("tester")),
                                  expected=Identity.cp()) as channel:
            await webhook_service_pb2_grpc.WebhookServiceStub(channel).AddWebhook(
                webhook_service_pb2.AddWebhookRequest(url="http://127.0.0.1:9/hooks", event_types=["rollout.held"]),
                timeout=RPC)
        async with rollout_stub(w) as ops:
            configured = await ops.ConfigureRollout(rollout_service_pb2.ConfigureRolloutRequest(
                exporter_wl=EXPORTER, importer_wl="wl-b", stage=rollout_pb2.ROLLOUT_STAGE_EXPANSION,
                pilot=rollout_service_pb2.RolloutLimitsInput(cohort_basis_points=1000, daily_value_cap="100"),
                expansion=rollout_service_pb2.RolloutLimitsInput(cohort_basis_points=10_000),
                step_back_on_breach=True, reason="expansion"), timeout=RPC)
            await eventually(lambda: all(n.state.version >= configured.version for n in w.nodes.values()),
                             timeout=10)

            # Healthy orders first: no hold.
            for i in range(3):
                done = await _checkout(w, "wl-b", f"fast-{i}", f"m-{i}")
                assert isinstance(done, storefront_pb2.Checkout)
                assert done.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED

            # The exporter turns slow.
            original = OrderDesk.place

            async def slow(self: OrderDesk, *args: Any, **kwargs: Any) -> Any:
                await asyncio.sleep(SLOW_S)
                return await original(self, *args, **kwargs)

            monkeypatch.setattr(OrderDesk, "place", slow)
            loop = asyncio.get_running_loop()
            started = loop.time()
            outcomes = await asyncio.gather(*(_checkout(w, "wl-b", f"slow-{i}", f"m-{i}") for i in range(10)))
            assert all(isinstance(o, storefront_pb2.Checkout) and o.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED
                       for o in outcomes)

            async def held() -> rollout_pb2.DirectionRollout | None:
                found = await ops.ListRollouts(rollout_service_pb2.ListRolloutsRequest(wl_id="wl-b"), timeout=RPC)
                rollout = found.rollouts[0]
                return rollout if rollout.held else None

            await eventually(held, timeout=30)  # the importer reports within ~5 s, the CP judges every 0.2 s
            hold_s = loop.time() - started
            rollout = await held()
            assert rollout is not None
            assert rollout.stage == rollout_pb2.ROLLOUT_STAGE_PILOT  # stepped back, as its policy says
            assert "confirmation_p99" in rollout.hold_reason and "EXPANSION" in rollout.hold_reason
            assert hold_s < 30

            # The nodes get the stepped-back stage in their views: the pilot's 10% cohort and cap of 100 apply.
            await eventually(lambda: all(_stage(n.state.current()) == rollout_pb2.ROLLOUT_STAGE_PILOT
                                         for n in w.nodes.values()), timeout=10)

            # ALERT signal to both WLs and the webhook event, in the hold's transaction; audited as the CP's act.
            async with w.cp.ctx.engine.connect() as conn:
                alerts = (await conn.execute(sa.select(risk_tables.signals.c.reason).where(
                    risk_tables.signals.c.kind == "ALERT"))).scalars().all()
                hooks = (await conn.execute(sa.select(deliveries.c.body).where(
                    deliveries.c.event_type == "rollout.held"))).scalars().all()
            assert len(alerts) == 1 and "held at PILOT" in alerts[0]
            assert len(hooks) == 1
            body = json.loads(hooks[0])["data"]
            assert (body["exporter_wl"], body["importer_wl"], body["stage"], body["previous_stage"]) == (
                EXPORTER, "wl-b", "PILOT", "EXPANSION")
            audit = await w.admin("ListAuditRecords", admin_service_pb2.ListAuditRecordsRequest(page_size=1000))
            assert isinstance(audit, admin_service_pb2.ListAuditRecordsResponse)
            holds = [r for r in audit.records if r.action == "rollout.auto_hold"]
            assert [r.actor for r in holds] == ["spiffe://xporty/cp"]

            # No promotion while held; the CP never releases it by itself.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await ops.PromoteRollout(rollout_service_pb2.PromoteRolloutRequest(
                    exporter_wl=EXPORTER, importer_wl="wl-b"), timeout=RPC)
            err = decode_rpc_error(refused.value)
            assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ROLLOUT_HELD")
            await asyncio.sleep(1.0)
            assert await held() is not None

            # The operator releases the hold; the breach already dealt with does not hold it again, then promotes.
            await ops.HoldRollout(rollout_service_pb2.HoldRolloutRequest(
                exporter_wl=EXPORTER, importer_wl="wl-b", held=False, reason="exporter fixed"), timeout=RPC)
            await asyncio.sleep(1.0)  # five judgements
            assert await held() is None
            promoted = await ops.PromoteRollout(rollout_service_pb2.PromoteRolloutRequest(
                exporter_wl=EXPORTER, importer_wl="wl-b", reason="SLO back"), timeout=RPC)
            assert promoted.rollout.stage == rollout_pb2.ROLLOUT_STAGE_EXPANSION and not promoted.rollout.held
            print(f"rollout held {hold_s:.1f} s after the slow orders started")  # noqa: T201


def _stage(view: Any) -> int:
    return next((r.stage for r in view.rollouts if r.importer_wl == "wl-b"), 0) if view is not None else 0
