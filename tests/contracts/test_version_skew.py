"""Version skew: a node built from the previous contract release works against the current CP, and current code
reads what a previous-release peer sends. ``buf breaking`` (CI) keeps every change additive; these tests run it.

The previous release's protos are taken from git (``PREVIOUS_RELEASE``), compiled with grpc_tools.protoc into a
temporary package, and used by a separate Python process (its ``xporty`` package shadows the current one):

* old node → current CP, over mTLS as a registered WL: WatchPolicies, GetPolicies and ReportPolicyStatus work; the
  view's new fields (flags, rollouts) are kept as unknown fields, so the node's last-known-good file round-trips
  byte for byte; the CP records no capability for it, so it refuses a flag for that WL and ``policy status`` lists
  what its view uses that it cannot enforce;
* old messages → current code: a view without flags or rollouts is valid and restricts nothing, its unknown flags
  read off; an old importer's PlaceOrderRequest carries no cohort hash, which no pilot cohort below 100% admits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import grpc_tools
import pytest
from grpc_tools import protoc

from tests.support.pki import PkiFixture
from tests.support.trust import import_wls
from tests.wl_node.catalog.helpers import DbFactory, db_factory
from tests.wl_node.rollout.helpers import RPC, capabilities_reported, rollout_stub
from tests.wl_node.test_cross_wl_trade import world
from wl_node.policy.validate import validate_view
from wl_node.rollout.rules import _rule
from xporty.cp.v1 import (
    admin_service_pb2,
    policy_pb2,
    policy_service_pb2,
    registry_pb2,
    rollout_pb2,
    rollout_service_pb2,
)
from xporty.trader.v1 import trader_service_pb2
from xwl_runtime.cohort import in_share
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity, pinned_name

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS_RELEASE = "5dfba414cb96b30729b4cb969ca1e915cbc75d32"
"""The last commit of contract release v1.0 (before feature flags, rollouts and capability reports)."""
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"


@pytest.fixture(scope="module")
def old_protos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's Python stubs, in a directory that shadows the current ``xporty`` package."""
    base = tmp_path_factory.mktemp("old-protos")
    src, out = base / "proto", base / "py"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", PREVIOUS_RELEASE, "proto/"],
                           check=True, capture_output=True, text=True).stdout.split()
    assert "proto/xporty/cp/v1/policy.proto" in files
    for name in files:
        target = base / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{PREVIOUS_RELEASE}:{name}"],
                                          check=True, capture_output=True).stdout)
    out.mkdir()
    xporty = [str(Path(n).relative_to("proto")) for n in files if n.startswith("proto/xporty/")]
    assert protoc.main(["protoc", f"-I{src}", f"-I{WELL_KNOWN}", f"--python_out={out}", f"--grpc_python_out={out}",
                        *xporty]) == 0
    for folder in [out / "xporty", *(p for p in (out / "xporty").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    old = (out / "xporty" / "cp" / "v1" / "policy_pb2.py").read_text()
    assert "feature_flags" not in old  # really the previous release
    return out


async def _run_old(old_protos: Path, script: str, *args: str) -> dict[str, object]:
    """Run ``script`` with the previous release's stubs (asynchronously: the CP serves on this event loop)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(old_protos), os.environ.get("PYTHONPATH", "")])}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", textwrap.dedent(script), *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    result: dict[str, object] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


OLD_NODE = """
    import asyncio, base64, json, sys
    import grpc
    from xporty.cp.v1 import policy_pb2, policy_service_pb2, policy_service_pb2_grpc
    assert "feature_flags" not in policy_pb2.PolicyView.DESCRIPTOR.fields_by_name  # the old contract
    target, ca, cert, key, name = sys.argv[1:6]
    creds = grpc.ssl_channel_credentials(open(ca, "rb").read(), open(key, "rb").read(), open(cert, "rb").read())

    async def main():
        async with grpc.aio.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", name)]) as ch:
            stub = policy_service_pb2_grpc.PolicyServiceStub(ch)
            pulled = await stub.GetPolicies(policy_service_pb2.GetPoliciesRequest(), timeout=10)
            raw = pulled.view.SerializeToString()
            stream = stub.WatchPolicies(policy_service_pb2.WatchPoliciesRequest(), timeout=10)
            first = await stream.read()
            stream.cancel()
            await stub.ReportPolicyStatus(policy_service_pb2.ReportPolicyStatusRequest(
                applied_version=pulled.view.version), timeout=10)
            old_view = policy_pb2.PolicyView(wl_id="wl-b", version=7, pairs=[policy_pb2.PairPolicy(
                wl_a="wl-a", wl_b="wl-b", status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, imbalance_limit="10",
                fx_rate="2", fx_version=1)])
            print(json.dumps({
                "version": pulled.view.version, "wl_id": pulled.view.wl_id, "pairs": len(pulled.view.pairs),
                "stream_version": first.snapshot.version,
                "unknown_kept": pulled.view.SerializeToString() == raw and len(raw) > 0,
                "view": base64.b64encode(raw).decode(), "old_view": base64.b64encode(
                    old_view.SerializeToString()).decode()}))

    asyncio.run(main())
"""


async def test_a_node_of_the_previous_release_works_against_the_current_cp(
    tmp_path: Path, pki: PkiFixture, old_protos: Path
) -> None:
    with db_factory("sqlite", tmp_path) as dbs:
        await _old_node_against_current_cp(tmp_path, pki, dbs, old_protos)


async def _old_node_against_current_cp(tmp_path: Path, pki: PkiFixture, dbs: DbFactory, old_protos: Path) -> None:
    async with world(tmp_path, pki, dbs, ["wl-b"]) as w:
        await w.admin("RegisterWl", admin_service_pb2.RegisterWlRequest(white_label=registry_pb2.WhiteLabel(
            wl_id="wl-old", name="old", currency="XPY-O", currency_decimals=2, reference_rate="1",
            trader_endpoint="127.0.0.1:9")))
        await import_wls(w.cp, pki, "wl-old")
        await capabilities_reported(w, "wl-a", "wl-b")
        ca, cert, key = pki.files(Identity.wl("wl-old"))
        async with rollout_stub(w) as ops:
            with pytest.raises(grpc.aio.AioRpcError) as refused:  # the old node cannot enforce flags
                await ops.SetFeatureFlag(rollout_service_pb2.SetFeatureFlagRequest(flag=_flag("wl-old")),
                                         timeout=RPC)
            err = decode_rpc_error(refused.value)
            assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FEATURE_NOT_SUPPORTED")
            forced = await ops.SetFeatureFlag(rollout_service_pb2.SetFeatureFlagRequest(
                flag=_flag("wl-old"), force=True, reason="skew test"), timeout=RPC)

        got = await _run_old(old_protos, OLD_NODE, f"127.0.0.1:{w.cp.port}", str(ca), str(cert), str(key),
                       pinned_name(Identity.cp()))
        assert (got["wl_id"], got["version"], got["stream_version"]) == ("wl-old", forced.version, forced.version)
        assert got["unknown_kept"] is True
        # What the old node received, read with the current contract: the flag is there, untouched.
        view = policy_pb2.PolicyView.FromString(base64.b64decode(str(got["view"])))
        assert [f.name for f in view.feature_flags] == ["new-fx-display"]

        status = await w.admin("ListNodeStatus", admin_service_pb2.ListNodeStatusRequest())
        assert isinstance(status, admin_service_pb2.ListNodeStatusResponse)
        by_wl = {n.wl_id: n for n in status.nodes}
        old = by_wl["wl-old"]
        assert (old.applied_version, old.software_version, list(old.unsupported)) == (
            forced.version, "", ["feature_flags"])
        assert by_wl["wl-b"].contract_version == "v1.1" and not by_wl["wl-b"].unsupported

        # A view from a CP of the previous release, read by the current node: valid, restricts nothing.
        previous = policy_pb2.PolicyView.FromString(base64.b64decode(str(got["old_view"])))
        assert list(previous.feature_flags) == [] and list(previous.rollouts) == []
        assert _rule(previous, "wl-a", "wl-b") is None


def test_an_old_importers_order_carries_no_cohort_hash_and_no_partial_cohort_admits_it() -> None:
    old = trader_service_pb2.PlaceOrderRequest(idempotency_key="k", offer_id="o", quantity=1)
    assert old.buyer_cohort_hash == ""
    assert not in_share(old.buyer_cohort_hash, 9999)
    assert in_share(old.buyer_cohort_hash, 10_000)  # a 100% cohort admits every buyer
    # A current node's report, as the previous release's CP would read it: the new fields are unknown, ignored.
    report = policy_service_pb2.ReportPolicyStatusRequest(applied_version=3, software_version="0.1.0",
                                                          contract_version="v1.1", features=["rollout_caps"])
    assert policy_service_pb2.ReportPolicyStatusRequest.FromString(report.SerializeToString()).applied_version == 3


def _flag(wl: str) -> rollout_pb2.FeatureFlag:
    import datetime as dt

    flag = rollout_pb2.FeatureFlag(wl_id=wl, name="new-fx-display", kind=rollout_pb2.FEATURE_FLAG_KIND_BOOLEAN,
                                   enabled=True, owner="growth")
    flag.expire_time.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=7))
    return flag


def test_the_view_validator_accepts_a_view_with_rollouts() -> None:
    view = policy_pb2.PolicyView(wl_id="wl-b", version=1, rollouts=[rollout_pb2.DirectionRollout(
        exporter_wl="wl-a", importer_wl="wl-b", stage=rollout_pb2.ROLLOUT_STAGE_PILOT)])
    validate_view(view, "wl-b")
