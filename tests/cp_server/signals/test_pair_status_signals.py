"""PAIR_STATUS signals: one per change of a pair's status, issued in the policy change's own transaction.

The first test drives the real CP (``build_cp``: AdminService, the policy store with its status hook, the signal
store and hub) over mTLS; the second drives the policy store and the signal store directly on the real database,
with a hook that fails after the signal was written, to prove the signal shares the change's transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import grpc
import pytest
import sqlalchemy as sa

from cp_server.risk import tables as t
from cp_server.signals.pair_status import PairStatusSignals
from cp_server.store.changes import ChangeRunner, Tx
from cp_server.store.pairs import PairPolicies
from cp_server.store.records import PairRecord, Status
from tests.cp_server.core_harness import OPS, RPC_TIMEOUT, Cp, rpc_error, running_cp
from tests.cp_server.risk.harness import running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import admin_service_pb2, policy_pb2, signal_pb2, signal_service_pb2, signal_service_pb2_grpc
from xwl_runtime import correlation
from xwl_runtime.identity import Identity

ACTIVE = policy_pb2.RELATIONSHIP_STATUS_ACTIVE
PAUSED = policy_pb2.RELATIONSHIP_STATUS_PAUSED
BLOCKED = policy_pb2.RELATIONSHIP_STATUS_BLOCKED
PAIR_STATUS = signal_pb2.SIGNAL_KIND_PAIR_STATUS


class Watch:
    """A WL's WatchSignals stream, collecting the signals it pushes."""

    def __init__(self, stub: signal_service_pb2_grpc.SignalServiceStub) -> None:
        self.call = stub.WatchSignals(signal_service_pb2.WatchSignalsRequest(), timeout=60)
        self.signals: list[signal_pb2.Signal] = []
        self.live = asyncio.Event()
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.call:
            if msg.HasField("signal"):
                self.signals.append(msg.signal)
                self._changed.set()
            else:
                self.live.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[signal_pb2.Signal]:
        async def enough() -> None:
            while len(self.signals) < n:
                await self._changed.wait()
                self._changed.clear()

        await asyncio.wait_for(enough(), timeout)
        return list(self.signals)

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[Cp]:
    async with running_cp(pki, db_url, heartbeat_interval=dt.timedelta(milliseconds=200)) as cp:
        await cp.register("wl-a", "wl-b", "wl-c")
        yield cp


async def _set(cp: Cp, a: str, b: str, cid: str, **fields: object) -> int:
    admin = await cp.admin()
    resp = await admin.UpdatePairPolicy(
        admin_service_pb2.UpdatePairPolicyRequest(wl_a=a, wl_b=b, reason="ops", **fields),  # type: ignore[arg-type]
        timeout=RPC_TIMEOUT, metadata=((correlation.METADATA_KEY, cid),))
    return int(resp.version)


async def _stored(cp: Cp) -> list[sa.Row[tuple[object, ...]]]:
    async with cp.app.ctx.engine.connect() as conn:
        return list((await conn.execute(sa.select(t.signals).order_by(t.signals.c.sequence))).all())


async def test_each_status_change_issues_one_signal_pushed_to_both_wls_and_audited(cp: Cp) -> None:
    sig = signal_service_pb2_grpc.SignalServiceStub
    watch_a = Watch(sig(await cp.channel(Identity.wl("wl-a"))))
    watch_b = Watch(sig(await cp.channel(Identity.wl("wl-b"))))
    try:
        await asyncio.wait_for(asyncio.gather(watch_a.live.wait(), watch_b.live.wait()), 10)
        await _set(cp, "wl-a", "wl-b", "cid-create", status=ACTIVE, imbalance_limit="100")  # created ACTIVE: none
        v_bc = await _set(cp, "wl-c", "wl-b", "cid-bc", status=PAUSED)  # created PAUSED: one
        await _set(cp, "wl-a", "wl-b", "cid-limit", imbalance_limit="200")  # not a status change: none
        await _set(cp, "wl-a", "wl-b", "cid-same", status=ACTIVE)  # no change at all: none
        v_paused = await _set(cp, "wl-b", "wl-a", "cid-pause", status=PAUSED)
        await _set(cp, "wl-a", "wl-b", "cid-paused-limit", status=PAUSED, imbalance_limit="300")  # still PAUSED
        v_blocked = await _set(cp, "wl-a", "wl-b", "cid-block", status=BLOCKED)
        admin = await cp.admin()
        await admin.UpdateDirectionPolicy(admin_service_pb2.UpdateDirectionPolicyRequest(
            exporter_wl="wl-a", importer_wl="wl-b", import_enabled=True, reason="ops"), timeout=RPC_TIMEOUT)
        # Refused: an FX step too large without force_fx. The status change in the same request is not applied.
        before = await cp.state()
        code, reason, _ = await rpc_error(_set(cp, "wl-a", "wl-b", "cid-refused", status=ACTIVE, fx_rate="5"))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FX_STEP_TOO_LARGE")
        assert await cp.state() == before
        v_active = await _set(cp, "wl-a", "wl-b", "cid-active", status=ACTIVE)

        rows = await _stored(cp)
        assert [(r.kind, r.source, r.exporter_wl, r.importer_wl, r.pair_status, r.policy_version, r.correlation_id)
                for r in rows] == [
            ("PAIR_STATUS", "POLICY", "wl-b", "wl-c", "PAUSED", v_bc, "cid-bc"),
            ("PAIR_STATUS", "POLICY", "wl-a", "wl-b", "PAUSED", v_paused, "cid-pause"),
            ("PAIR_STATUS", "POLICY", "wl-a", "wl-b", "BLOCKED", v_blocked, "cid-block"),
            ("PAIR_STATUS", "POLICY", "wl-a", "wl-b", "ACTIVE", v_active, "cid-active"),
        ]
        assert all(r.actor == OPS.spiffe_id for r in rows)
        async with cp.app.ctx.engine.connect() as conn:  # risk direction states are a separate matter
            assert (await conn.execute(sa.select(sa.func.count()).select_from(t.direction_state))).scalar_one() == 0

        # Each signal is audited right after its policy change, with the request's correlation id.
        audit = await cp.app.ctx.audit.list(cp.app.ctx.engine, after_seq=0, limit=1000)
        signal_audits = [e for e in audit if e.action == "signal.pair_status"]
        assert [(e.subject, e.correlation_id) for e in signal_audits] == [
            ("pair/wl-b/wl-c", "cid-bc"), ("pair/wl-a/wl-b", "cid-pause"), ("pair/wl-a/wl-b", "cid-block"),
            ("pair/wl-a/wl-b", "cid-active")]
        by_seq = {e.seq: e for e in audit}
        for e in signal_audits:
            change = by_seq[e.seq - 1]
            assert change.action.startswith("pair_policy.") and change.correlation_id == e.correlation_id

        # Pushed live to both WLs of each pair, nobody else's.
        got_b = await watch_b.wait_for(4)
        got_a = await watch_a.wait_for(3)
        assert [(s.kind, s.pair_status, s.policy_version) for s in got_b] == [
            (PAIR_STATUS, PAUSED, v_bc), (PAIR_STATUS, PAUSED, v_paused), (PAIR_STATUS, BLOCKED, v_blocked),
            (PAIR_STATUS, ACTIVE, v_active)]
        assert [s.signal_id for s in got_a] == [s.signal_id for s in got_b[1:]]
        assert got_a[0].source == signal_pb2.SIGNAL_SOURCE_POLICY
        assert (got_a[0].exporter_wl, got_a[0].importer_wl) == ("wl-a", "wl-b")
        await asyncio.sleep(0.3)
        assert len(watch_a.signals) == 3 and len(watch_b.signals) == 4  # exactly one per change
    finally:
        await watch_a.close()
        await watch_b.close()


class _Boom(Exception):
    pass


async def test_a_change_that_fails_after_the_signal_was_written_leaves_no_signal(
    pki: PkiFixture, db_url: str
) -> None:
    async with running_risk_cp(pki, db_url, heartbeat=dt.timedelta(milliseconds=200)) as cp:
        await cp.seed({"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "1")}, [])
        changes = ChangeRunner(cp.engine, cp.audit, cp.ctx.clock, notify_channel="xcwl_policy_test")
        status_signals = PairStatusSignals(cp.parts.store, cp.parts.hub)
        changes.add_commit_listener(status_signals.after_commit)
        watch = Watch(cp.node("wl-b").signals)

        async def boom(tx: Tx, previous: Status | None, pair: PairRecord, reason: str) -> None:
            assert (await cp.parts.store.last_sequence(tx.conn)) == 1  # the signal is written in this transaction
            raise _Boom

        working = PairPolicies(changes, cp.ctx.settings)
        working.add_status_hook(status_signals.on_status_change)
        failing = PairPolicies(changes, cp.ctx.settings)
        failing.add_status_hook(status_signals.on_status_change)
        failing.add_status_hook(boom)
        try:
            await asyncio.wait_for(watch.live.wait(), 10)
            await working.update_pair(OPS.spiffe_id, wl_x="wl-a", wl_y="wl-b", status=Status.ACTIVE)  # none
            token = correlation.current_correlation_id.set("cid-fails")
            try:
                with pytest.raises(_Boom):
                    await failing.update_pair(OPS.spiffe_id, wl_x="wl-a", wl_y="wl-b",
                                              status=Status.PAUSED)
            finally:
                correlation.current_correlation_id.reset(token)
            async with cp.engine.connect() as conn:
                assert await cp.parts.store.last_sequence(conn) == 0
                assert (await conn.execute(sa.select(sa.func.count()).select_from(t.signals))).scalar_one() == 0
            assert not [e for e in await cp.audit.list(cp.engine, after_seq=0, limit=100)
                        if e.action == "signal.pair_status"]

            done = await working.update_pair(OPS.spiffe_id, wl_x="wl-b", wl_y="wl-a",
                                             status=Status.PAUSED, reason="maintenance")
            got = await watch.wait_for(1)  # pushed by the commit listener (SQLite has no NOTIFY)
            assert (got[0].sequence, got[0].pair_status, got[0].policy_version) == (1, PAUSED, done.version)
            assert got[0].reason == f"pair PAUSED at policy version {done.version}: maintenance"
        finally:
            await watch.close()
