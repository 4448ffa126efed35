"""A pair's status on the signal path: real CP, real exporter and importer nodes, real checkouts.

A node's policy view is held back with its own policy agent's lock (the agent applies nothing while it is held),
and a node's signals with its enforcer's apply lock, so each test step sees exactly one path delivered:

* PAUSED by signal while both views still say ACTIVE → the importer refuses checkouts (``PAIR_PAUSED``) and marks
  the offer unavailable; an importer that has not heard yet is refused by the exporter (order DENIED
  ``PAIR_PAUSED``, no stock moved); both acknowledge with the effective time;
* ACTIVE arriving by one path only keeps refusing (fail safe); trade resumes once view and signal agree;
* a restarted node resumes after its cursor: nothing is applied or acknowledged twice;
* an older policy version never overrides a newer status, and a status the node does not know is not ACTIVE.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.risk.tables import signal_acks
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, storefront
from tests.wl_node.conftest import eventually, node_settings
from tests.wl_node.risk.harness import risk_of
from tests.wl_node.risk.harness import world as risk_world
from tests.wl_node.test_cross_wl_trade import EXPORTER, RPC, World, _publish, _ready_to_buy, _stock, world
from wl_node.app import NodeApp, build_node
from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.orders.tables import orders as orders_table
from wl_node.risk.enforcer import Enforcer
from wl_node.risk.pair_status import PairStatusState
from wl_node.store import open_store
from wl_node.telemetry import queue as q
from xporty.cp.v1 import admin_service_pb2, policy_pb2, signal_pb2
from xporty.node.v1 import storefront_pb2, storefront_service_pb2
from xwl_runtime.clock import SystemClock
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity

IMPORTER = "wl-b"
ACTIVE = policy_pb2.RELATIONSHIP_STATUS_ACTIVE
PAUSED = policy_pb2.RELATIONSHIP_STATUS_PAUSED


@asynccontextmanager
async def views_held(*nodes: NodeApp) -> AsyncIterator[None]:
    """The nodes' policy agents apply no view (stream or pull) until the block ends."""
    locks = [n.agent._lock for n in nodes]  # noqa: SLF001 - the agent's own apply lock, held from outside
    for lock in locks:
        await lock.acquire()
    try:
        yield
    finally:
        for lock in locks:
            lock.release()


@asynccontextmanager
async def signals_held(node: NodeApp) -> AsyncIterator[None]:
    """The node's enforcer applies no signal until the block ends (the stream waits on the apply)."""
    lock = _enforcer(node)._apply_lock  # noqa: SLF001
    await lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _enforcer(node: NodeApp) -> Enforcer:
    enforcer = risk_of(node).enforcer
    assert enforcer is not None
    return enforcer


def _signal_status(node: NodeApp) -> str | None:
    state = _enforcer(node).pair_status(EXPORTER, IMPORTER)
    return state.status if state is not None else None


def _view_status(node: NodeApp) -> int:
    other = IMPORTER if node.settings.wl_id == EXPORTER else EXPORTER
    pair = node.state.pair(other)
    assert pair is not None
    return int(pair.status)


async def _set_status(w: World, status: int) -> int:
    resp = await w.admin("UpdatePairPolicy", admin_service_pb2.UpdatePairPolicyRequest(
        wl_a=EXPORTER, wl_b=IMPORTER, status=status, reason="test"))
    return int(resp.version)  # type: ignore[attr-defined]


class Shop:
    """The importer's local API as its shop uses it."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.n = 0

    async def checkout(self) -> storefront_pb2.Checkout | tuple[grpc.StatusCode, str]:
        """The checkout, or (code, reason) when it was refused before anything was stored."""
        self.n += 1
        async with storefront(self.w.pki, self.w.nodes[IMPORTER].port, Identity.app(IMPORTER, "shop")) as api:
            try:
                resp = await api.Checkout(storefront_service_pb2.CheckoutRequest(
                    idempotency_key=f"k-{self.n}", imported_offer_id="wl-a:o-1", quantity=1, buyer_reference="m-1"),
                    timeout=RPC)
            except grpc.aio.AioRpcError as err:
                decoded = decode_rpc_error(err)
                return decoded.code, decoded.reason
            return resp.checkout

    async def available(self) -> bool | None:
        """Whether the imported offer is marked available; None while the catalog hides it."""
        async with storefront(self.w.pki, self.w.nodes[IMPORTER].port, Identity.app(IMPORTER, "shop")) as api:
            try:
                resp = await api.GetImportedOffer(storefront_service_pb2.GetImportedOfferRequest(
                    imported_offer_id="wl-a:o-1"), timeout=RPC)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
        return bool(resp.offer.available)


async def _completed(shop: Shop) -> None:
    result = await shop.checkout()
    assert isinstance(result, storefront_pb2.Checkout), result
    assert result.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED, result


async def _acks(w: World, signal_id: str) -> dict[str, dt.datetime]:
    async with w.cp.ctx.engine.connect() as conn:
        rows = (await conn.execute(sa.select(signal_acks.c.wl_id, signal_acks.c.effective_time)
                                   .where(signal_acks.c.signal_id == signal_id))).all()
    return {r.wl_id: r.effective_time for r in rows}


async def _ack_events(node: NodeApp) -> int:
    return await _ack_events_in(node.engine)


async def _ack_events_in(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(q.queue)
                                       .where(q.queue.c.kind == "ENFORCEMENT_ACK"))).scalar_one())


async def test_pair_status_by_signal_stops_trade_before_the_view_and_resumes_only_with_both(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, [IMPORTER]) as w:
        exporter, importer = w.nodes[EXPORTER], w.nodes[IMPORTER]
        await _publish(w, "o-1", "10.00", 100)
        await _ready_to_buy(w, IMPORTER, "wl-a:o-1")
        shop = Shop(w)

        async def trades() -> bool:
            result = await shop.checkout()
            return isinstance(result, storefront_pb2.Checkout) and \
                result.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED

        await eventually(trades, timeout=20)
        seen: list[PairStatusState] = []
        _enforcer(importer).add_pair_listener(seen.append)

        # 1. PAUSED by signal; neither view has it. The importer has not heard either: the exporter refuses.
        async with views_held(exporter, importer):
            async with signals_held(importer):
                v_paused = await _set_status(w, PAUSED)
                took = await eventually(lambda: _signal_status(exporter) == "PAUSED", timeout=5)
                assert took < 2.0
                assert _view_status(exporter) == ACTIVE
                stock = await _stock(w, "o-1")
                denied = await shop.checkout()
                assert isinstance(denied, storefront_pb2.Checkout), denied
                assert (denied.status, denied.reason) == (storefront_pb2.CHECKOUT_STATUS_FAILED, "PAIR_PAUSED")
                async with exporter.engine.connect() as conn:
                    row = (await conn.execute(sa.select(orders_table.c.status, orders_table.c.reason)
                                              .order_by(orders_table.c.created_at.desc()).limit(1))).one()
                assert (row.status, row.reason) == ("DENIED", "PAIR_PAUSED")
                assert await _stock(w, "o-1") == stock
            # The importer's enforcer now applies it: refused early, nothing stored, offer marked unavailable.
            await eventually(lambda: _signal_status(importer) == "PAUSED", timeout=5)
            assert _view_status(importer) == ACTIVE
            assert await shop.checkout() == (grpc.StatusCode.FAILED_PRECONDITION, "PAIR_PAUSED")
            assert await shop.available() is False
            gate = risk_of(importer).gate
            assert gate is not None
            assert gate.decision(EXPORTER, IMPORTER).deny_reason == "PAIR_PAUSED"
            assert [(s.status, s.policy_version) for s in seen] == [("PAUSED", v_paused)]

            # Acknowledged by both WLs with the time the enforcement took effect (AckSignal and ENFORCEMENT_ACK).
            signal_id = seen[0].signal_id
            await eventually(lambda: _has_both(w, signal_id), timeout=5)
            acks = await _acks(w, signal_id)
            assert acks[IMPORTER] == seen[0].effective_at
            exporter_state = _enforcer(exporter).pair_status(EXPORTER, IMPORTER)
            assert exporter_state is not None and acks[EXPORTER] == exporter_state.effective_at
        await eventually(lambda: importer.state.version >= v_paused and exporter.state.version >= v_paused)
        assert await shop.available() is None  # the view's path: the catalog hides the paused pair's offers

        # 2. ACTIVE by signal first: both views still PAUSED, so both nodes keep refusing (re-activation needs both).
        async with views_held(exporter, importer):
            v_active = await _set_status(w, ACTIVE)
            await eventually(lambda: _signal_status(importer) == "ACTIVE" and _signal_status(exporter) == "ACTIVE",
                             timeout=5)
            assert _view_status(importer) == PAUSED and _view_status(exporter) == PAUSED
            for node in (importer, exporter):
                node_gate = risk_of(node).gate
                assert node_gate is not None
                assert node_gate.decision(EXPORTER, IMPORTER).deny_reason == "PAIR_PAUSED"
            assert await shop.checkout() == (grpc.StatusCode.NOT_FOUND, "OFFER_NOT_FOUND")  # still hidden
        await eventually(lambda: importer.state.version >= v_active and exporter.state.version >= v_active)
        await eventually(trades, timeout=20)  # the catalog re-imports, the checkout goes through

        # 3. PAUSED again through both paths, then ACTIVE by view first: the importer's signal still refuses.
        v_paused2 = await _set_status(w, PAUSED)
        await eventually(lambda: _signal_status(importer) == "PAUSED" and importer.state.version >= v_paused2)
        async with signals_held(importer):
            v_active2 = await _set_status(w, ACTIVE)
            await eventually(lambda: importer.state.version >= v_active2 and exporter.state.version >= v_active2)
            await eventually(lambda: _shown(shop), timeout=20)  # the catalog re-imports for the ACTIVE views
            assert _signal_status(importer) == "PAUSED"
            assert await shop.available() is False
            assert await shop.checkout() == (grpc.StatusCode.FAILED_PRECONDITION, "PAIR_PAUSED")
        await eventually(lambda: _signal_status(importer) == "ACTIVE", timeout=5)
        await _completed(shop)
        assert await shop.available() is True
        assert [(s.status, s.policy_version) for s in seen] == [
            ("PAUSED", v_paused), ("ACTIVE", v_active), ("PAUSED", v_paused2), ("ACTIVE", v_active2)]

        # 3. Restart: the cursor and the pair's status are persisted; nothing is applied or acknowledged twice.
        enforcer = _enforcer(importer)
        cursor, acks_before = enforcer.after_sequence, await _ack_events(importer)
        assert acks_before == 4
        await importer.stop(0)
        settings = replace(node_settings(tmp_path / IMPORTER, pki, f"127.0.0.1:{w.cp.port}"), wl_id=IMPORTER,
                           db_url=importer.settings.db_url, order_timeout=dt.timedelta(seconds=5))
        restarted = await build_node(settings)
        w.nodes[IMPORTER] = restarted
        again = _enforcer(restarted)
        await eventually(lambda: again.connected and not again.stale(), timeout=20)
        await asyncio.sleep(0.5)  # heartbeats pass; a replay would have been applied by now
        state = again.pair_status(IMPORTER, EXPORTER)
        assert state is not None and (state.status, state.policy_version) == ("ACTIVE", v_active2)
        assert again.after_sequence == cursor and again.acks_sent == 0
        assert await _ack_events(restarted) == acks_before
        await eventually(lambda: restarted.checkouts is not None
                         and restarted.checkouts.tokens.get(EXPORTER) is not None, timeout=20)
        await eventually(trades, timeout=20)


async def _shown(shop: Shop) -> bool:
    return await shop.available() is not None


async def _has_both(w: World, signal_id: str) -> bool:
    return set(await _acks(w, signal_id)) == {EXPORTER, IMPORTER}


def _status_signal(sequence: int, status: int, policy_version: int) -> signal_pb2.Signal:
    return signal_pb2.Signal(
        signal_id=f"s-{sequence}", sequence=sequence, kind=signal_pb2.SIGNAL_KIND_PAIR_STATUS,
        source=signal_pb2.SIGNAL_SOURCE_POLICY, exporter_wl="wl-a", importer_wl="wl-b", reason="test",
        correlation_id=f"cid-{sequence}", pair_status=status, policy_version=policy_version)  # type: ignore[arg-type]


async def test_the_newest_policy_version_wins_and_an_unknown_status_is_not_active(
    tmp_path: Path, pki: PkiFixture, sqlite_dbs: DbFactory
) -> None:
    async with risk_world(tmp_path, pki, sqlite_dbs, ["wl-a", "wl-b"]) as w:
        engine = await open_store(sqlite_dbs("standalone"), "wl-b")
        material = pki.material(Identity.wl("wl-b"))
        cp = CpChannel(cp_channel_factory(f"127.0.0.1:{w.cp_port}", reconnect_cap_s=0.3), material,
                       identity=Identity.wl("wl-b"))
        try:
            enforcer = Enforcer(engine, cp, SystemClock(), "wl-b")
            await enforcer.load()
            enforcer.contact_at = dt.datetime.now(dt.UTC)  # not stale: only the pair's status decides here
            assert enforcer.signal_gate("wl-a", "wl-b") is None
            assert await enforcer.apply(_status_signal(5, PAUSED, policy_version=20))
            assert enforcer.signal_gate("wl-a", "wl-b") == "PAIR_PAUSED"
            assert enforcer.signal_gate("wl-b", "wl-a") == "PAIR_PAUSED"  # both directions
            # A later sequence carrying an older policy version is acknowledged but changes nothing.
            assert await enforcer.apply(_status_signal(6, ACTIVE, policy_version=19))
            state = enforcer.pair_status("wl-b", "wl-a")
            assert state is not None and (state.status, state.policy_version) == ("PAUSED", 20)
            assert not await enforcer.apply(_status_signal(5, ACTIVE, policy_version=30))  # replay: skipped
            assert enforcer.signal_gate("wl-a", "wl-b") == "PAIR_PAUSED"
            assert await enforcer.apply(_status_signal(7, policy_pb2.RELATIONSHIP_STATUS_BLOCKED, 21))
            assert enforcer.signal_gate("wl-a", "wl-b") == "PAIR_BLOCKED"
            assert await enforcer.apply(_status_signal(8, 99, 22))  # a status this node does not know
            assert enforcer.signal_gate("wl-a", "wl-b") == "PAIR_NOT_ACTIVE"
            assert await enforcer.apply(_status_signal(9, ACTIVE, 23))
            assert enforcer.signal_gate("wl-a", "wl-b") is None

            # Persisted with the cursor: a new enforcer on the same store starts where this one stopped.
            reloaded = Enforcer(engine, cp, SystemClock(), "wl-b")
            await reloaded.load()
            state = reloaded.pair_status("wl-a", "wl-b")
            assert state is not None and (state.status, state.policy_version, state.sequence) == ("ACTIVE", 23, 9)
            assert reloaded.after_sequence == 9
            assert await _ack_events_in(engine) == 5  # one ENFORCEMENT_ACK per applied signal, the replay none
        finally:
            await cp.close()
            await engine.dispose()
