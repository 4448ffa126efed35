"""PolicyService over real mTLS: snapshots on connect and on change, heartbeats, authz, pull, cross-replica."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy import event

from cp_server.identity.signing import load_or_create_signing_key
from tests.cp_server.core_harness import OPS, RPC_TIMEOUT, Cp, rpc_error, running_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import policy_service_pb2 as ps
from xwl_runtime.identity import Identity
from xwl_runtime.tokens import key_id

WL_A = Identity.wl("wl-a")


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[Cp]:
    async with running_cp(pki, db_url, heartbeat_interval=dt.timedelta(milliseconds=200)) as running:
        await running.register("wl-a", "wl-b", "wl-c")
        admin = await running.admin()
        await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="10"),
                                     timeout=RPC_TIMEOUT)
        yield running


async def _next(stream: grpc.aio.UnaryStreamCall, kind: str) -> ps.WatchPoliciesResponse:
    """The next message of ``kind``, skipping others (bounded)."""
    for _ in range(50):
        msg = await asyncio.wait_for(stream.read(), timeout=5)
        assert msg is not grpc.aio.EOF
        if msg.WhichOneof("event") == kind:
            return msg
    raise AssertionError(f"no {kind} received")


async def test_view_contents(cp: Cp, pki: PkiFixture) -> None:
    policy = await cp.policy(WL_A)
    resp = await policy.GetPolicies(ps.GetPoliciesRequest(), timeout=RPC_TIMEOUT)
    view = resp.view
    assert view.wl_id == "wl-a" and view.version == resp.version == cp.app.hub.version
    assert [w.wl_id for w in view.white_labels] == ["wl-a", "wl-b"]  # not wl-c: no pair with it
    assert [(p.wl_a, p.wl_b) for p in view.pairs] == [("wl-a", "wl-b")]
    assert len(view.pairs[0].directions) == 2
    jwt_key = load_or_create_signing_key(pki.dir.root)
    assert [(k.kid, k.algorithm) for k in view.token_keys] == [(key_id(jwt_key.public_key()), "ES256")]
    lonely = await (await cp.policy(Identity.wl("wl-c"))).GetPolicies(ps.GetPoliciesRequest(), timeout=RPC_TIMEOUT)
    assert [w.wl_id for w in lonely.view.white_labels] == ["wl-c"] and not lonely.view.pairs


async def test_watch_sends_snapshot_then_new_snapshot_after_change_and_heartbeats(cp: Cp) -> None:
    policy = await cp.policy(WL_A)
    stream = policy.WatchPolicies(ps.WatchPoliciesRequest(wl_id="wl-a"))
    try:
        first = await asyncio.wait_for(stream.read(), timeout=5)
        assert first.WhichOneof("event") == "snapshot"
        v1 = first.snapshot.version
        beat = await _next(stream, "heartbeat")
        assert beat.heartbeat.version == v1
        admin = await cp.admin()
        changed = await admin.UpdatePairPolicy(
            pb.UpdatePairPolicyRequest(wl_a="wl-b", wl_b="wl-a", imbalance_limit="20"), timeout=RPC_TIMEOUT)
        snap = (await _next(stream, "snapshot")).snapshot
        assert snap.version == changed.version > v1
        assert snap.pairs[0].imbalance_limit == "20"
    finally:
        stream.cancel()


async def test_wl_may_not_read_another_wls_view(pki: PkiFixture, sqlite_db_url: str) -> None:
    async with running_cp(pki, sqlite_db_url) as cp:
        await cp.register("wl-a", "wl-b")
        await _refused_other_views(cp)


async def _refused_other_views(cp: Cp) -> None:
    policy = await cp.policy(WL_A)
    code, reason, _ = await rpc_error(policy.GetPolicies(ps.GetPoliciesRequest(wl_id="wl-b"), timeout=RPC_TIMEOUT))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "OTHER_WL_VIEW")
    stream = policy.WatchPolicies(ps.WatchPoliciesRequest(wl_id="wl-b"), timeout=RPC_TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream.read()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    app = await cp.policy(Identity.app("wl-a", "shop"))
    code, _, _ = await rpc_error(app.GetPolicies(ps.GetPoliciesRequest(), timeout=RPC_TIMEOUT))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_operators_must_name_a_wl_and_may_watch_any(cp: Cp) -> None:
    policy = await cp.policy(OPS)
    code, _, meta = await rpc_error(policy.GetPolicies(ps.GetPoliciesRequest(), timeout=RPC_TIMEOUT))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and meta["field"] == "wl_id"
    code, reason, _ = await rpc_error(policy.GetPolicies(ps.GetPoliciesRequest(wl_id="wl-zz"), timeout=RPC_TIMEOUT))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_WL")
    stream = policy.WatchPolicies(ps.WatchPoliciesRequest(wl_id="wl-b"))
    try:
        first = await asyncio.wait_for(stream.read(), timeout=5)
        assert first.snapshot.wl_id == "wl-b"
    finally:
        stream.cancel()


async def test_get_policies_not_modified_without_touching_the_store(cp: Cp) -> None:
    policy = await cp.policy(WL_A)
    full = await policy.GetPolicies(ps.GetPoliciesRequest(known_version=0), timeout=RPC_TIMEOUT)
    assert not full.not_modified and full.view.version == full.version
    statements: list[str] = []

    loops = cp.app.lifecycle.loop_tasks

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if asyncio.current_task() not in loops:  # the CP's background loops share the engine (a reconcile pass)
            statements.append(statement)

    event.listen(cp.app.ctx.engine.sync_engine, "before_cursor_execute", count)
    try:
        same = await policy.GetPolicies(ps.GetPoliciesRequest(known_version=full.version), timeout=RPC_TIMEOUT)
        stale = await policy.GetPolicies(ps.GetPoliciesRequest(known_version=full.version - 1), timeout=RPC_TIMEOUT)
    finally:
        event.remove(cp.app.ctx.engine.sync_engine, "before_cursor_execute", count)
    assert same.not_modified and same.version == full.version and not same.HasField("view")
    assert not stale.not_modified and stale.view == full.view
    # The CP's background loops share the engine: the webhook outbox's pass may run meanwhile (its own table).
    assert [s for s in statements if "webhook_deliveries" not in s] == []
