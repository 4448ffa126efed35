"""AdminService behaviour: defaults, FX rule and guardrails, kill switch, authz, versions, node status, audit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import duration_pb2

from cp_server.store.schema import audit_log
from tests.cp_server.core_harness import OPS, RPC_TIMEOUT, Cp, rpc_error, running_cp, wl_proto
from tests.support.pki import PkiFixture
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import policy_pb2, policy_service_pb2
from xwl_runtime.identity import Identity


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[Cp]:
    async with running_cp(pki, db_url) as running:
        await running.register("wl-a", "wl-b", rates={"wl-a": "2", "wl-b": "0.5"})
        yield running


async def test_new_pair_defaults_and_fx_derived_from_reference_rates(cp: Cp) -> None:
    admin = await cp.admin()
    resp = await admin.UpdateDirectionPolicy(
        pb.UpdateDirectionPolicyRequest(exporter_wl="wl-b", importer_wl="wl-a", import_enabled=True),
        timeout=RPC_TIMEOUT,
    )
    p = resp.policy
    assert (p.wl_a, p.wl_b) == ("wl-a", "wl-b")
    assert p.status == policy_pb2.RELATIONSHIP_STATUS_ACTIVE
    assert p.imbalance_limit == "0"
    assert p.fx_rate == "4"  # 1 unit of wl-a (2 ref) buys 4 units of wl-b (0.5 ref)
    assert p.fx_version == 1 and not p.imports_frozen
    assert [(d.exporter_wl, d.importer_wl, d.import_enabled, d.destination_visible, d.export_delay.seconds)
            for d in p.directions] == [("wl-a", "wl-b", False, False, 0), ("wl-b", "wl-a", True, False, 0)]
    assert p.changed_version == resp.version


async def test_fx_given_in_reverse_order_is_inverted_and_rounded(cp: Cp) -> None:
    admin = await cp.admin()
    resp = await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-b", wl_b="wl-a", fx_rate="3"),
                                        timeout=RPC_TIMEOUT)
    assert resp.policy.fx_rate == "0.333333333333"  # 12 significant digits, half-even
    got = await admin.GetPairPolicy(pb.GetPairPolicyRequest(wl_a="wl-b", wl_b="wl-a"), timeout=RPC_TIMEOUT)
    assert got.policy.fx_rate == "0.333333333333"


async def test_fx_step_refused_without_force_and_audited_when_forced(cp: Cp) -> None:
    admin = await cp.admin()
    await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", fx_rate="4"),
                                 timeout=RPC_TIMEOUT)
    within = await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", fx_rate="4.4"),
                                          timeout=RPC_TIMEOUT)  # exactly the 10% step
    assert within.policy.fx_version == 2
    before = await cp.state()
    code, reason, meta = await rpc_error(admin.UpdatePairPolicy(
        pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", fx_rate="5"), timeout=RPC_TIMEOUT))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FX_STEP_TOO_LARGE")
    assert meta["field"] == "fx_rate" and meta["current_fx_rate"] == "4.4"
    assert await cp.state() == before
    forced = await admin.UpdatePairPolicy(
        pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", fx_rate="5", force_fx=True, reason="market moved"),
        timeout=RPC_TIMEOUT)
    assert forced.policy.fx_rate == "5" and forced.policy.fx_version == 3
    records = (await admin.ListAuditRecords(pb.ListAuditRecordsRequest(), timeout=RPC_TIMEOUT)).records
    last = records[-1]
    assert last.action == "pair_policy.force_fx"
    assert last.actor == OPS.spiffe_id and last.correlation_id
    after = json.loads(last.after_json)
    assert after["fx_forced"] is True and after["reason"] == "market moved" and after["fx_rate"] == "5"
    assert json.loads(last.before_json)["fx_rate"] == "4.4"


async def test_kill_switch_is_in_both_views(cp: Cp) -> None:
    admin = await cp.admin()
    resp = await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imports_frozen=True),
                                        timeout=RPC_TIMEOUT)
    for wl in ("wl-a", "wl-b"):
        policy = await cp.policy(Identity.wl(wl))
        got = await policy.GetPolicies(policy_service_pb2.GetPoliciesRequest(), timeout=RPC_TIMEOUT)
        assert got.version == resp.version
        assert [p.imports_frozen for p in got.view.pairs] == [True]


async def test_unchanged_update_does_not_bump_the_version(cp: Cp) -> None:
    admin = await cp.admin()
    first = await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="10"),
                                         timeout=RPC_TIMEOUT)
    state = await cp.state()
    again = await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-b", wl_b="wl-a", imbalance_limit="10.0"),
                                         timeout=RPC_TIMEOUT)
    assert again.version == first.version
    assert await cp.state() == state


async def test_only_operators_call_admin_and_only_nodes_report(pki: PkiFixture, sqlite_db_url: str) -> None:
    async with running_cp(pki, sqlite_db_url) as cp:
        await cp.register("wl-a")
        await _refused_callers(cp)


async def _refused_callers(cp: Cp) -> None:
    await cp.channel(Identity.wl("wl-a"))  # imports the offline-issued node certificate (an audited change)
    before = await cp.state()
    for ident in (Identity.wl("wl-a"), Identity.app("wl-a", "shop")):
        admin = await cp.admin(ident)
        code, reason, _ = await rpc_error(admin.RegisterWl(pb.RegisterWlRequest(white_label=wl_proto("wl-x")),
                                                           timeout=RPC_TIMEOUT))
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")
        code, _, _ = await rpc_error(admin.ListWls(pb.ListWlsRequest(), timeout=RPC_TIMEOUT))
        assert code == grpc.StatusCode.PERMISSION_DENIED
    policy = await cp.policy(OPS)
    code, _, _ = await rpc_error(policy.ReportPolicyStatus(
        policy_service_pb2.ReportPolicyStatusRequest(applied_version=1), timeout=RPC_TIMEOUT))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert await cp.state() == before


async def test_versions_stay_monotonic_across_restart(pki: PkiFixture, db_url: str) -> None:
    async with running_cp(pki, db_url) as first:
        v1 = await first.register("wl-a", "wl-b")
        admin = await first.admin()
        v2 = (await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="5"),
                                           timeout=RPC_TIMEOUT)).version
        assert v2 == v1 + 1
    async with running_cp(pki, db_url) as second:
        policy = await second.policy(Identity.wl("wl-a"))
        view = (await policy.GetPolicies(policy_service_pb2.GetPoliciesRequest(), timeout=RPC_TIMEOUT)).view
        assert view.version == v2 and view.pairs[0].imbalance_limit == "5"  # full view right after restart
        admin = await second.admin()
        v3 = (await admin.UpdateWl(pb.UpdateWlRequest(wl_id="wl-a", name="Renamed"), timeout=RPC_TIMEOUT)).version
        assert v3 == v2 + 1


async def test_node_status_shows_applied_version_and_drift(cp: Cp) -> None:
    admin = await cp.admin()
    node = await cp.policy(Identity.wl("wl-a"))
    current = (await node.GetPolicies(policy_service_pb2.GetPoliciesRequest(), timeout=RPC_TIMEOUT)).version
    ack = await node.ReportPolicyStatus(policy_service_pb2.ReportPolicyStatusRequest(applied_version=current),
                                        timeout=RPC_TIMEOUT)
    assert ack.current_version == current
    nodes = {n.wl_id: n for n in (await admin.ListNodeStatus(pb.ListNodeStatusRequest(), timeout=RPC_TIMEOUT)).nodes}
    assert not nodes["wl-a"].drifted and nodes["wl-a"].applied_version == current
    assert nodes["wl-a"].drift.ToTimedelta().total_seconds() == 0
    assert nodes["wl-b"].drifted and nodes["wl-b"].applied_version == 0  # never reported
    newer = (await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="1"),
                                          timeout=RPC_TIMEOUT)).version
    await asyncio.sleep(0.05)
    await node.ReportPolicyStatus(policy_service_pb2.ReportPolicyStatusRequest(
        applied_version=current, rejected_version=newer, error="pairs[0]: broken"), timeout=RPC_TIMEOUT)
    nodes = {n.wl_id: n for n in (await admin.ListNodeStatus(pb.ListNodeStatusRequest(), timeout=RPC_TIMEOUT)).nodes}
    a = nodes["wl-a"]
    assert a.drifted and a.current_version == newer and a.applied_version == current
    assert a.drift.ToTimedelta().total_seconds() >= 0.05
    assert (a.rejected_version, a.last_error) == (newer, "pairs[0]: broken")
    assert a.report_time.ToSeconds() > 0


async def test_bootstrap_token_is_created_and_audited_without_the_token(cp: Cp) -> None:
    admin = await cp.admin()
    resp = await admin.CreateBootstrapToken(
        pb.CreateBootstrapTokenRequest(wl_id="wl-a", ttl=duration_pb2.Duration(seconds=600)), timeout=RPC_TIMEOUT)
    assert len(resp.token) >= 32 and resp.expire_time.ToSeconds() > 0
    # Prefixed: recognisable to secret scanners, and a command line never reads it as an option ("-…").
    assert resp.token.startswith("xbt_")
    records = (await admin.ListAuditRecords(pb.ListAuditRecordsRequest(), timeout=RPC_TIMEOUT)).records
    assert records[-1].action == "bootstrap_token.create" and records[-1].subject == "wl/wl-a"
    assert all(resp.token not in (r.before_json + r.after_json) for r in records)


async def test_audit_log_verifies_and_detects_tampering(cp: Cp) -> None:
    admin = await cp.admin()
    await admin.UpdatePairPolicy(pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="100"),
                                 timeout=RPC_TIMEOUT)
    records = (await admin.ListAuditRecords(pb.ListAuditRecordsRequest(), timeout=RPC_TIMEOUT)).records
    assert [r.sequence for r in records] == [1, 2, 3]
    assert [r.action for r in records] == ["wl.register", "wl.register", "pair_policy.create"]
    page = (await admin.ListAuditRecords(pb.ListAuditRecordsRequest(after_sequence=1, page_size=1),
                                         timeout=RPC_TIMEOUT)).records
    assert [r.sequence for r in page] == [2]
    ok = await admin.VerifyAuditLog(pb.VerifyAuditLogRequest(), timeout=RPC_TIMEOUT)
    assert (ok.ok, ok.records, ok.first_bad_sequence) == (True, 3, 0)
    tampered = json.loads(records[1].after_json) | {"reference_rate": "1000"}
    async with cp.app.ctx.engine.begin() as conn:
        await conn.execute(sa.update(audit_log).where(audit_log.c.seq == 2)
                           .values(after_json=json.dumps(tampered, sort_keys=True, separators=(",", ":"))))
    bad = await admin.VerifyAuditLog(pb.VerifyAuditLogRequest(), timeout=RPC_TIMEOUT)
    assert (bad.ok, bad.first_bad_sequence) == (False, 2)


async def test_decimal_inputs_are_stored_normalized(cp: Cp) -> None:
    admin = await cp.admin()
    resp = await admin.UpdateWl(pb.UpdateWlRequest(wl_id="wl-a", reference_rate="2.50000"), timeout=RPC_TIMEOUT)
    assert resp.white_label.reference_rate == "2.5"
    pair = await admin.UpdatePairPolicy(
        pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="1E+3"), timeout=RPC_TIMEOUT)
    assert pair.policy.imbalance_limit == "1000"
    assert Decimal(pair.policy.fx_rate) == Decimal(5)  # derived: 2.5 / 0.5
