"""Feature flags per WL: set at the CP (audited, versioned), streamed to the WL's node in its view, and read by its
apps on the local API; unknown flags read off, expired flags read their default, percentage flags by subject.

A real CP and real nodes built by their composition roots (SQLite).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, db_factory
from tests.wl_node.conftest import eventually
from tests.wl_node.rollout.helpers import RPC, capabilities_reported, flag_stub, rollout_stub
from tests.wl_node.test_cross_wl_trade import world
from wl_node.rollout.flags import evaluate
from xporty.cp.v1 import admin_service_pb2, registry_pb2, rollout_pb2, rollout_service_pb2
from xporty.node.v1 import feature_flag_pb2, feature_flag_service_pb2
from xwl_runtime.cohort import flag_bucket
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def sqlite_dbs(tmp_path: Path) -> Iterator[DbFactory]:
    with db_factory("sqlite", tmp_path) as make:
        yield make


def _flag(wl: str, name: str, **fields: object) -> rollout_pb2.FeatureFlag:
    values: dict[str, object] = {"kind": rollout_pb2.FEATURE_FLAG_KIND_BOOLEAN, "owner": "growth", **fields}
    flag = rollout_pb2.FeatureFlag(wl_id=wl, name=name, **values)  # type: ignore[arg-type]
    flag.expire_time.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
    return flag


async def test_a_flag_change_reaches_the_node_and_its_apps_stream_and_read(
    tmp_path: Path, pki: PkiFixture, sqlite_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, sqlite_dbs, ["wl-b"]) as w:
        await capabilities_reported(w, "wl-a", "wl-b")
        app = Identity.app("wl-b", "shop")
        async with flag_stub(pki, w.nodes["wl-b"].port, app) as flags, rollout_stub(w) as ops:
            stream = flags.WatchFeatureFlags(feature_flag_service_pb2.WatchFeatureFlagsRequest(
                names=["new-fx-display", "checkout.enabled"], subject="member-7"), timeout=60)
            first = await stream.read()
            assert isinstance(first, feature_flag_service_pb2.WatchFeatureFlagsResponse)
            assert [(f.name, f.known, f.enabled) for f in first.flags] == [
                ("new-fx-display", False, False), ("checkout.enabled", False, False)]  # unknown: off

            loop = asyncio.get_running_loop()
            started = loop.time()
            done = await ops.SetFeatureFlag(rollout_service_pb2.SetFeatureFlagRequest(
                flag=_flag("wl-b", "new-fx-display", enabled=True, description="FX shown in both currencies"),
                reason="pilot the new display"), timeout=RPC)
            changed = await asyncio.wait_for(stream.read(), timeout=10)
            propagation_s = loop.time() - started
            assert isinstance(changed, feature_flag_service_pb2.WatchFeatureFlagsResponse)
            assert changed.policy_version == done.version
            assert [(f.name, f.known, f.enabled) for f in changed.flags] == [
                ("new-fx-display", True, True), ("checkout.enabled", False, False)]
            assert propagation_s < 5.0, propagation_s  # the policy propagation bound (heartbeats are 1 s here)
            stream.cancel()

            read = await flags.GetFeatureFlags(feature_flag_service_pb2.GetFeatureFlagsRequest(), timeout=RPC)
            assert [(f.name, f.enabled, f.owner) for f in read.flags] == [("new-fx-display", True, "growth")]
            assert read.policy_version >= done.version

            # Another WL's node never carries it, and another WL's app may not read this node's flags.
            async with flag_stub(pki, w.nodes["wl-a"].port, Identity.app("wl-a", "shop")) as other:
                got = await other.GetFeatureFlags(feature_flag_service_pb2.GetFeatureFlagsRequest(
                    names=["new-fx-display"]), timeout=RPC)
                assert (got.flags[0].known, got.flags[0].enabled) == (False, False)
            async with flag_stub(pki, w.nodes["wl-b"].port, Identity.app("wl-a", "spy"), node="wl-b") as spy:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await spy.GetFeatureFlags(feature_flag_service_pb2.GetFeatureFlagsRequest(), timeout=RPC)
                err = decode_rpc_error(refused.value)
                assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_THIS_WL")

            # A percentage flag: deterministic per subject.
            pct = _flag("wl-b", "checkout.enabled", kind=rollout_pb2.FEATURE_FLAG_KIND_PERCENTAGE,
                        percent_basis_points=5000)
            await ops.SetFeatureFlag(rollout_service_pb2.SetFeatureFlagRequest(flag=pct), timeout=RPC)
            members = [f"member-{i}" for i in range(40)]

            async def percent_applied() -> bool:
                r = await flags.GetFeatureFlags(feature_flag_service_pb2.GetFeatureFlagsRequest(
                    names=["checkout.enabled"], subject=members[0]), timeout=RPC)
                return r.flags[0].known

            await eventually(percent_applied, timeout=10)
            for member in members:
                r = await flags.GetFeatureFlags(feature_flag_service_pb2.GetFeatureFlagsRequest(
                    names=["checkout.enabled"], subject=member), timeout=RPC)
                assert r.flags[0].enabled == (flag_bucket("checkout.enabled", member) < 5000), member

            history = await ops.ListFeatureFlagHistory(rollout_service_pb2.ListFeatureFlagHistoryRequest(
                wl_id="wl-b", name="new-fx-display"), timeout=RPC)
            assert len(history.changes) == 1
            assert history.changes[0].actor == "spiffe://xporty/ops/tester"
            after = json.loads(history.changes[0].after_json)
            assert (after["enabled"], after["reason"], after["version"]) == (True, "pilot the new display",
                                                                              done.version)
            listed = await ops.ListFeatureFlags(rollout_service_pb2.ListFeatureFlagsRequest(wl_id="wl-b"),
                                                timeout=RPC)
            assert [f.name for f in listed.flags] == ["checkout.enabled", "new-fx-display"]


async def test_the_cp_refuses_a_flag_for_a_node_that_did_not_report_the_capability(
    tmp_path: Path, pki: PkiFixture, sqlite_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, sqlite_dbs, ["wl-b"]) as w:
        await w.admin("RegisterWl", admin_service_pb2.RegisterWlRequest(white_label=registry_pb2.WhiteLabel(
            wl_id="wl-old", name="old", currency="XPY-O", currency_decimals=2, reference_rate="1",
            trader_endpoint="127.0.0.1:9")))
        async with rollout_stub(w) as ops:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await ops.SetFeatureFlag(rollout_service_pb2.SetFeatureFlagRequest(
                    flag=_flag("wl-old", "new-fx-display", enabled=True)), timeout=RPC)
            err = decode_rpc_error(refused.value)
            assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FEATURE_NOT_SUPPORTED")
            assert (err.metadata["wl_id"], err.metadata["feature"]) == ("wl-old", "feature_flags")
            listed = await ops.ListFeatureFlags(rollout_service_pb2.ListFeatureFlagsRequest(), timeout=RPC)
            assert list(listed.flags) == []  # nothing stored
            forced = await ops.SetFeatureFlag(rollout_service_pb2.SetFeatureFlagRequest(
                flag=_flag("wl-old", "new-fx-display", enabled=True), force=True), timeout=RPC)
            assert forced.flag.enabled
            # ``policy status`` shows what the view uses that the node never reported.
            status = await w.admin("ListNodeStatus", admin_service_pb2.ListNodeStatusRequest())
            assert isinstance(status, admin_service_pb2.ListNodeStatusResponse)
            by_wl = {n.wl_id: n for n in status.nodes}
            assert list(by_wl["wl-old"].unsupported) == ["feature_flags"]
            assert by_wl["wl-old"].software_version == ""


def test_expired_and_unknown_flags_read_their_default() -> None:
    flag = rollout_pb2.FeatureFlag(wl_id="wl-b", name="x", kind=rollout_pb2.FEATURE_FLAG_KIND_BOOLEAN,
                                   enabled=True, default_enabled=False, owner="o")
    flag.expire_time.FromDatetime(NOW)
    before = evaluate(flag, "x", "", NOW - dt.timedelta(seconds=1))
    after = evaluate(flag, "x", "", NOW)
    assert (before.enabled, before.expired) == (True, False)
    assert (after.enabled, after.expired, after.known) == (False, True, True)
    assert evaluate(None, "y", "s", NOW) == feature_flag_pb2.FlagValue(name="y", enabled=False, known=False)
    newer = rollout_pb2.FeatureFlag(name="z", kind=7, default_enabled=True)  # type: ignore[arg-type]
    assert evaluate(newer, "z", "", NOW).enabled  # a kind from a newer CP reads its default
    full = rollout_pb2.FeatureFlag(name="p", kind=rollout_pb2.FEATURE_FLAG_KIND_PERCENTAGE,
                                   percent_basis_points=10_000)
    assert evaluate(full, "p", "", NOW).enabled and not evaluate(
        rollout_pb2.FeatureFlag(name="p", kind=rollout_pb2.FEATURE_FLAG_KIND_PERCENTAGE, percent_basis_points=9999),
        "p", "", NOW).enabled
