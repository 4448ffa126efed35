"""The node's enforcer against the real CP: DISABLE/ENABLE signals, acknowledgements, fail-closed on a stale view."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from cp_server.risk.tables import signal_acks
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory
from tests.wl_node.conftest import eventually
from tests.wl_node.risk.harness import ready, risk_of, world
from wl_node.risk.enforcer import DirectionState
from wl_node.telemetry import queue as q
from xporty.cp.v1 import admin_service_pb2, policy_pb2, signal_pb2
from xwl_runtime.errors import FailedPrecondition


def _reason(call: object, *args: str) -> str:
    with pytest.raises(FailedPrecondition) as info:
        call(*args)  # type: ignore[operator]
    return info.value.reason


async def test_disable_signal_is_enforced_acknowledged_and_lifted_by_enable(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b"]) as w:
        node = await w.start_node("wl-b")  # the importer of wl-a → wl-b
        await ready(node)
        risk = risk_of(node)
        enforcer, gate = risk.enforcer, risk.gate
        assert enforcer is not None and gate is not None
        seen: list[DirectionState] = []
        enforcer.add_listener(seen.append)
        gate.check_import("wl-a")
        gate.check_export("wl-a")

        signal = await w.send_signal(signal_pb2.SIGNAL_KIND_DISABLE, "wl-a", "wl-b")
        took = await eventually(lambda: enforcer.is_disabled("wl-a", "wl-b"), timeout=5)
        assert took < 2.0
        assert _reason(gate.check_import, "wl-a") == "DIRECTION_DISABLED"
        gate.check_export("wl-a")  # the other direction still trades
        assert not enforcer.is_disabled("wl-b", "wl-a")
        assert [(s.signal_id, s.disabled, s.source) for s in seen] == [(signal.signal_id, True, "OPERATOR")]

        # Acknowledged to the CP: AckSignal with the effective time, and an ENFORCEMENT_ACK event.
        async def acked() -> bool:
            async with w.cp.ctx.engine.connect() as conn:
                row = (await conn.execute(sa.select(signal_acks.c.effective_time).where(
                    signal_acks.c.signal_id == signal.signal_id, signal_acks.c.wl_id == "wl-b"))).first()
            return row is not None

        await eventually(acked, timeout=5)
        async with w.cp.ctx.engine.connect() as conn:
            effective = (await conn.execute(sa.select(signal_acks.c.effective_time).where(
                signal_acks.c.signal_id == signal.signal_id))).scalar_one()
        assert effective == seen[0].effective_at

        async def ack_event_sent() -> bool:
            async with node.engine.connect() as conn:
                return (await conn.execute(sa.select(sa.func.count()).select_from(q.queue).where(
                    q.queue.c.kind == "ENFORCEMENT_ACK", q.queue.c.state == q.SENT))).scalar_one() == 1

        await eventually(ack_event_sent, timeout=10)

        enable = await w.send_signal(signal_pb2.SIGNAL_KIND_ENABLE, "wl-a", "wl-b")
        await eventually(lambda: not enforcer.is_disabled("wl-a", "wl-b"), timeout=5)
        gate.check_import("wl-a")
        assert enforcer.after_sequence >= enable.sequence

        # Persisted: a restarted node resumes after the last signal, with the direction's state.
        await w.send_signal(signal_pb2.SIGNAL_KIND_DISABLE, "wl-a", "wl-b")
        await eventually(lambda: enforcer.is_disabled("wl-a", "wl-b"), timeout=5)
        await node.stop(0)
        node = await w.start_node("wl-b")
        restarted = risk_of(node).enforcer
        assert restarted is not None
        await eventually(lambda: restarted.direction("wl-a", "wl-b") is not None, timeout=5)
        assert restarted.is_disabled("wl-a", "wl-b")
        assert restarted.after_sequence >= enable.sequence + 1


async def test_pause_block_and_the_policy_view_come_through_the_same_gate(
    tmp_path: Path, pki: PkiFixture, sqlite_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, sqlite_dbs, ["wl-a", "wl-b"]) as w:
        node = await w.start_node("wl-b")
        await ready(node)
        gate = risk_of(node).gate
        assert gate is not None
        for status, reason in ((policy_pb2.RELATIONSHIP_STATUS_PAUSED, "PAIR_PAUSED"),
                               (policy_pb2.RELATIONSHIP_STATUS_BLOCKED, "PAIR_BLOCKED")):
            resp = await w.admin("UpdatePairPolicy", admin_service_pb2.UpdatePairPolicyRequest(
                wl_a="wl-a", wl_b="wl-b", status=status, imbalance_limit="1000000", fx_rate="1", force_fx=True,
                reason="test"))
            await eventually(lambda v=resp.version: node.state.version == v, timeout=5)
            assert _reason(gate.check_import, "wl-a") == reason
            assert _reason(gate.check_export, "wl-a") == reason
        resp = await w.admin("UpdatePairPolicy", admin_service_pb2.UpdatePairPolicyRequest(
            wl_a="wl-a", wl_b="wl-b", status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, imbalance_limit="1000000",
            fx_rate="1", force_fx=True, reason="test"))
        await eventually(lambda: node.state.version == resp.version, timeout=5)

        def trades() -> bool:
            """Re-activation needs both paths: the view (applied above) and the pair status signal."""
            try:
                gate.check_import("wl-a")
            except FailedPrecondition:
                return False
            return True

        await eventually(trades, timeout=5)
        gate.check_export("wl-a")
        assert _reason(gate.check_import, "wl-z") == "NO_PAIR_POLICY"


async def test_a_stale_risk_view_fails_closed_until_the_stream_is_back(
    tmp_path: Path, pki: PkiFixture, sqlite_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, sqlite_dbs, ["wl-a", "wl-b"]) as w:
        node = await w.start_node("wl-b")
        await ready(node)
        risk = risk_of(node)
        enforcer, gate = risk.enforcer, risk.gate
        assert enforcer is not None and gate is not None
        enforcer.config = replace(enforcer.config, max_view_age=dt.timedelta(seconds=1.5))
        gate.check_import("wl-a")

        await w.cp.stop(0)
        took = await eventually(lambda: enforcer.is_disabled("wl-a", "wl-b"), timeout=10)
        assert took >= 0.5  # not at once: the bound, not the disconnection, decides
        assert enforcer.is_disabled("wl-b", "wl-a")  # every direction it trades in
        with pytest.raises(FailedPrecondition) as info:
            gate.check_import("wl-a")
        assert info.value.reason == "RISK_VIEW_STALE"

        await w.start_cp()
        await eventually(lambda: not enforcer.stale(), timeout=15)
        gate.check_import("wl-a")
