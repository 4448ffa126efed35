"""Catalog sync lag per exporter in the node's operations reports: its level, only when the level changes; stored by
the real CP (SQLite and PostgreSQL), shown by GetSloReport and ``xcwl_reported_sync_lag_seconds``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.observability.test_gauges import scrape
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory
from tests.wl_node.conftest import OPS, eventually
from tests.wl_node.operations.test_reports_and_slo import _reporter, first_report_then_quiet, signed
from tests.wl_node.risk.harness import World, ready, world
from tests.xcwl.test_trade_commands import OPERATOR, run
from xporty.cp.v1 import analytics_service_pb2, analytics_service_pb2_grpc, operations_pb2, telemetry_service_pb2
from xporty.cp.v1 import telemetry_service_pb2_grpc as telemetry_grpc
from xwl_runtime.identity import Identity
from xwl_runtime.sync_lag import LEVELS_S, lag_level
from xwl_runtime.tls import secure_channel

METRIC = "xcwl_reported_sync_lag_seconds"


def test_levels_are_current_below_30_s_then_the_lower_bound_of_each_band() -> None:
    assert [lag_level(s) for s in (0.0, 9.9, 29.999)] == [0.0, 0.0, 0.0]
    assert [lag_level(s) for s in (30.0, 59.0, 60.0, 299.0, 86399.0, 86400.0, 10 * 86400.0)] == [
        30.0, 30.0, 60.0, 120.0, 43200.0, 86400.0, 86400.0]
    assert list(LEVELS_S) == sorted(LEVELS_S)


async def _lags(w: World) -> dict[tuple[str, str], Any]:
    async with secure_channel(f"127.0.0.1:{w.cp_port}", w.pki.material(OPS), expected=Identity.cp()) as channel:
        resp = await analytics_service_pb2_grpc.AnalyticsServiceStub(channel).GetSloReport(
            analytics_service_pb2.GetSloReportRequest(window_seconds=3600), timeout=10)
    return {(x.importer_wl, x.exporter_wl): x for x in resp.sync_lags}


async def test_sync_lag_is_reported_per_exporter_only_when_its_level_changes(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b", "wl-c"]) as w:
        b = await w.start_node("wl-b")
        await ready(b)
        reporter = _reporter(b)
        reporter.config = type(reporter.config)(batch_delay_s=0.1)
        # The first report after start: the real sync workers' levels for every exporter wl-b imports from (their
        # endpoints do not answer, so the copies are not older than the workers: level 0, for now).
        await first_report_then_quiet(reporter)
        at_start = await _lags(w)
        assert set(at_start) == {("wl-b", "wl-a"), ("wl-b", "wl-c")}
        assert all(x.level_seconds == 0 and 0 <= x.seconds < 30 for x in at_start.values())

        # From here the lags come from a table the test moves (the sync workers' figures, made to age fast).
        lags = {"wl-a": 3.0, "wl-c": 5.0}
        reporter.track_sync(lambda: dict(lags))
        reporter.sync_activity()
        lags["wl-a"] = 12.0
        reporter.sync_activity()  # moved, but still current: same level, nothing to send
        await asyncio.sleep(0.4)
        assert reporter.reports_sent == 1

        lags["wl-a"] = 45.0  # stale: level 30
        reporter.sync_activity()
        await eventually(lambda: reporter.reports_sent == 2, timeout=10)
        lags["wl-a"] = 59.0  # same level
        reporter.sync_activity()
        await asyncio.sleep(0.4)
        assert reporter.reports_sent == 2
        stale = (await _lags(w))[("wl-b", "wl-a")]
        assert stale.level_seconds == 30 and stale.seconds >= 45  # extrapolated while stale
        samples = await scrape(w.cp.ctx.metrics.registry)
        assert samples[(METRIC, (("exporter", "wl-a"), ("importer", "wl-b")))] >= 45
        assert samples[(METRIC, (("exporter", "wl-c"), ("importer", "wl-b")))] < 30

        lags["wl-a"] = 0.2  # a pull reached the exporter's head: current again
        del lags["wl-c"]  # wl-c no longer imported: its worker stopped
        reporter.sync_activity()
        await eventually(lambda: reporter.reports_sent == 3, timeout=10)
        after = await _lags(w)
        assert set(after) == {("wl-b", "wl-a")}
        assert after[("wl-b", "wl-a")].level_seconds == 0 and after[("wl-b", "wl-a")].seconds == pytest.approx(0.2)
        assert set(k for k in await scrape(w.cp.ctx.metrics.registry) if k[0] == METRIC) == {
            (METRIC, (("exporter", "wl-a"), ("importer", "wl-b")))}


async def test_a_complete_lag_report_drops_exporters_it_does_not_name_and_bad_lags_are_refused(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    import grpc

    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b", "wl-c"]) as w:
        def peer(exporter: str, seconds: float, level: float) -> operations_pb2.PeerOperations:
            return operations_pb2.PeerOperations(exporter_wl=exporter, sync_lag=operations_pb2.SyncLag(
                level_seconds=level, seconds=seconds))

        material = pki.material(Identity.wl("wl-b"))
        async with secure_channel(f"127.0.0.1:{w.cp_port}", material, expected=Identity.cp()) as channel:
            stub = telemetry_grpc.TelemetryServiceStub(channel)
            await stub.ReportOperations(signed(telemetry_service_pb2.ReportOperationsRequest(
                peers=[peer("wl-a", 700.0, 600.0), peer("wl-c", 40.0, 30.0)]), material), timeout=10)
            assert {k: v.level_seconds for k, v in (await _lags(w)).items()} == {
                ("wl-b", "wl-a"): 600.0, ("wl-b", "wl-c"): 30.0}
            # What the operator reads: stale copies first, with their level.
            pki.material(Identity.ops(OPERATOR))
            code, out, err = await run(capsys, "report", "slo", "--cp", f"127.0.0.1:{w.cp_port}", "--pki",
                                       str(pki.dir.root), "--as", OPERATOR)
            assert code == 0, err
            table = out[out.index("catalog sync lag"):].splitlines()
            assert [line.split()[:3] for line in table[3:5]] == [["wl-b/wl-a", ">=", "600"],
                                                                   ["wl-b/wl-c", ">=", "30"]]
            code, out, _ = await run(capsys, "report", "slo", "--cp", f"127.0.0.1:{w.cp_port}", "--pki",
                                     str(pki.dir.root), "--as", OPERATOR, "--json")
            assert [(x["importer_wl"], x["exporter_wl"], x["level_seconds"]) for x in json.loads(out)["sync_lags"]] \
                == [("wl-b", "wl-a", 600.0), ("wl-b", "wl-c", 30.0)]
            # A node restarted and importing only from wl-c now: its first lag report is complete.
            await stub.ReportOperations(signed(telemetry_service_pb2.ReportOperationsRequest(
                peers=[peer("wl-c", 1.0, 0.0)], sync_lag_complete=True), material), timeout=10)
            assert {k: v.level_seconds for k, v in (await _lags(w)).items()} == {("wl-b", "wl-c"): 0.0}
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ReportOperations(signed(telemetry_service_pb2.ReportOperationsRequest(
                    peers=[peer("wl-a", float("nan"), 0.0)]), material), timeout=10)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "sync_lag" in err.value.details()
            assert set(await _lags(w)) == {("wl-b", "wl-c")}
