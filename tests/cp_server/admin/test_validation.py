"""Every bad input to the admin RPCs: INVALID_ARGUMENT naming the field, and nothing stored (version, audit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from tests.cp_server.core_harness import RPC_TIMEOUT, Cp, rpc_error, running_cp, wl_proto
from tests.support.pki import PkiFixture
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import policy_pb2


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[Cp]:
    async with running_cp(pki, db_url) as running:
        await running.register("wl-a", "wl-b")
        yield running


def _wl(**changes: Any) -> pb.RegisterWlRequest:
    wl = wl_proto("wl-new")
    for key, value in changes.items():
        setattr(wl, key, value)
    return pb.RegisterWlRequest(white_label=wl)


REGISTER_CASES = [
    (_wl(wl_id=""), "white_label.wl_id"),
    (_wl(wl_id="Bad_Id"), "white_label.wl_id"),
    (_wl(name=""), "white_label.name"),
    (_wl(name="x" * 201), "white_label.name"),
    (_wl(currency=""), "white_label.currency"),
    (_wl(currency="XPY A"), "white_label.currency"),
    (_wl(currency_decimals=9), "white_label.currency_decimals"),
    (_wl(reference_rate="0"), "white_label.reference_rate"),
    (_wl(reference_rate="-1"), "white_label.reference_rate"),
    (_wl(reference_rate="abc"), "white_label.reference_rate"),
    (_wl(reference_rate="NaN"), "white_label.reference_rate"),
    (_wl(trader_endpoint=""), "white_label.trader_endpoint"),
    (_wl(trader_endpoint="no-port"), "white_label.trader_endpoint"),
    (_wl(trader_endpoint="host:0"), "white_label.trader_endpoint"),
    (_wl(trader_endpoint="host:65536"), "white_label.trader_endpoint"),
    (_wl(trader_endpoint="bad_host!:80"), "white_label.trader_endpoint"),
]

PAIR_CASES = [
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-a", imbalance_limit="1"), "wl_b", "SELF_PAIR"),
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-zz", imbalance_limit="1"), "wl_b", "UNKNOWN_WL"),
    (pb.UpdatePairPolicyRequest(wl_a="WL-A", wl_b="wl-b"), "wl_a", "INVALID_ARGUMENT"),
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", fx_rate="0"), "fx_rate", "INVALID_ARGUMENT"),
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", fx_rate="-2"), "fx_rate", "INVALID_ARGUMENT"),
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", fx_rate="two"), "fx_rate", "INVALID_ARGUMENT"),
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", fx_rate="1e7"), "fx_rate", "INVALID_ARGUMENT"),
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", fx_rate="1e-7"), "fx_rate", "INVALID_ARGUMENT"),
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="-1"), "imbalance_limit",
     "INVALID_ARGUMENT"),
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", status=policy_pb2.RELATIONSHIP_STATUS_UNSPECIFIED),
     "status", "INVALID_ARGUMENT"),
    (pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", status=99), "status", "INVALID_ARGUMENT"),  # type: ignore[arg-type]
]

DIRECTION_CASES = [
    (pb.UpdateDirectionPolicyRequest(exporter_wl="wl-a", importer_wl="wl-a", import_enabled=True), "importer_wl"),
    (pb.UpdateDirectionPolicyRequest(exporter_wl="wl-zz", importer_wl="wl-a", import_enabled=True), "exporter_wl"),
    (pb.UpdateDirectionPolicyRequest(exporter_wl="wl-a", importer_wl="wl-b",
                                     export_delay=duration_pb2.Duration(seconds=-1)), "export_delay"),
    (pb.UpdateDirectionPolicyRequest(exporter_wl="wl-a", importer_wl="wl-b",
                                     export_delay=duration_pb2.Duration(seconds=31 * 86400)), "export_delay"),
    (pb.UpdateDirectionPolicyRequest(exporter_wl="wl-a", importer_wl="wl-b",
                                     export_delay=duration_pb2.Duration(seconds=1, nanos=5)), "export_delay"),
]


async def _expect_invalid(cp: Cp, call: Any, field: str, reason: str = "INVALID_ARGUMENT") -> None:
    before = await cp.state()
    code, got_reason, meta = await rpc_error(call)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert meta.get("field") == field
    assert got_reason == reason
    assert await cp.state() == before, "a refused request changed the version or the audit log"


async def test_each_bad_field_is_refused_and_nothing_is_stored(cp: Cp) -> None:
    admin = await cp.admin()
    for request, field in REGISTER_CASES:
        await _expect_invalid(cp, admin.RegisterWl(request, timeout=RPC_TIMEOUT), field)
    for request, field, reason in PAIR_CASES:
        await _expect_invalid(cp, admin.UpdatePairPolicy(request, timeout=RPC_TIMEOUT), field, reason)
    for request, field in DIRECTION_CASES:
        reason = "UNKNOWN_WL" if "zz" in request.exporter_wl else (
            "SELF_PAIR" if request.exporter_wl == request.importer_wl else "INVALID_ARGUMENT")
        await _expect_invalid(cp, admin.UpdateDirectionPolicy(request, timeout=RPC_TIMEOUT), field, reason)
    await _expect_invalid(cp, admin.UpdateWl(pb.UpdateWlRequest(wl_id="wl-a", reference_rate="0"),
                                             timeout=RPC_TIMEOUT), "reference_rate")
    await _expect_invalid(cp, admin.UpdateWl(pb.UpdateWlRequest(wl_id="wl-a", trader_endpoint="x"),
                                             timeout=RPC_TIMEOUT), "trader_endpoint")
    listed = await admin.ListWls(pb.ListWlsRequest(), timeout=RPC_TIMEOUT)
    assert [w.wl_id for w in listed.white_labels] == ["wl-a", "wl-b"]
    assert list((await admin.ListPairPolicies(pb.ListPairPoliciesRequest(), timeout=RPC_TIMEOUT)).policies) == []


async def test_unknown_and_duplicate_wls(cp: Cp) -> None:
    admin = await cp.admin()
    before = await cp.state()
    code, reason, _ = await rpc_error(admin.UpdateWl(pb.UpdateWlRequest(wl_id="wl-q", name="Q"), timeout=RPC_TIMEOUT))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_WL")
    code, _, _ = await rpc_error(admin.RegisterWl(pb.RegisterWlRequest(white_label=wl_proto("wl-a")),
                                                  timeout=RPC_TIMEOUT))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    code, reason, _ = await rpc_error(admin.GetPairPolicy(pb.GetPairPolicyRequest(wl_a="wl-a", wl_b="wl-b"),
                                                          timeout=RPC_TIMEOUT))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_PAIR")
    assert await cp.state() == before


async def test_bootstrap_token_refuses_unknown_wl_and_bad_ttl(cp: Cp) -> None:
    admin = await cp.admin()
    await _expect_invalid(cp, admin.CreateBootstrapToken(pb.CreateBootstrapTokenRequest(wl_id="wl-zz"),
                                                         timeout=RPC_TIMEOUT), "wl_id", "UNKNOWN_WL")
    await _expect_invalid(cp, admin.CreateBootstrapToken(
        pb.CreateBootstrapTokenRequest(wl_id="wl-a", ttl=duration_pb2.Duration(seconds=8 * 86400)),
        timeout=RPC_TIMEOUT), "ttl")
    await _expect_invalid(cp, admin.CreateBootstrapToken(
        pb.CreateBootstrapTokenRequest(wl_id="wl-a", ttl=duration_pb2.Duration(seconds=0, nanos=0)),
        timeout=RPC_TIMEOUT), "ttl")
    code, _, _ = await rpc_error(admin.ListAuditRecords(pb.ListAuditRecordsRequest(page_size=1001),
                                                        timeout=RPC_TIMEOUT))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
