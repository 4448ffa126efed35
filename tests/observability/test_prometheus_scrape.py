"""A real Prometheus scrapes a CP and two trading nodes during a checkout burst; p99 confirmation per peer is finite.

Needs the ``prometheus`` binary (Debian package, installed by ``.ci/run``).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.observability.world import buy_many, running_world
from xcwl.demo_world import free_port

pytestmark = pytest.mark.timeout(240)

SCRAPE = "500ms"
P99 = ("histogram_quantile(0.99, sum by (le, exporter) "
       "(rate(xcwl_checkout_confirmation_seconds_bucket[30s])))")


def _prometheus() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (.ci/run installs the Debian package)")
    return binary


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback test server
        body = json.load(resp)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def _eventually(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def test_prometheus_sees_finite_p99_confirmation_per_peer(tmp_path: Path) -> None:
    binary = _prometheus()
    async with running_world(tmp_path, metrics=True) as (world, ports):
        targets = [f"127.0.0.1:{ports[name]}" for name in ("cp", "wl-a", "wl-b")]
        config = tmp_path / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: {SCRAPE}\n  scrape_timeout: {SCRAPE}\n"
            "scrape_configs:\n  - job_name: xcwl\n    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n"
        )
        web = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        proc = _start_prometheus(binary, config, tmp_path / "tsdb", web, log)
        try:
            await _eventually(lambda: proc.poll() is not None or len(_safe_query(web, "up == 1")) == 3, 60,
                              "3 targets up")
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            # Each importer's series per exporter exist at zero before its first order, so the burst below is an
            # increase even when it falls between two scrapes.
            zeroed = await _eventually(
                lambda: _safe_query(web, "xcwl_checkout_confirmation_seconds_count == 0"), 30, "zeroed series")
            assert {(z["metric"]["instance"], z["metric"]["exporter"]) for z in zeroed} >= {
                (targets[1], "wl-b"), (targets[2], "wl-a")}, zeroed
            # A burst of checkouts both ways, spread over several scrapes: wl-b buys wl-a's, wl-a buys wl-b's.
            results = await asyncio.gather(
                buy_many(world, "wl-b", "wl-a:a-3", 40, "prom-b"),
                buy_many(world, "wl-a", "wl-b:b-2", 40, "prom-a"),
            )
            assert all(len(r) == 40 for r in results)
            series = await _eventually(lambda: _p99_both(web), 30, "p99 per peer")
            by_peer = {s["metric"]["exporter"]: float(s["value"][1]) for s in series}
            assert set(by_peer) == {"wl-a", "wl-b"}, by_peer
            for peer, p99 in by_peer.items():
                assert math.isfinite(p99) and 0 < p99 <= 10, (peer, p99)
            # The CP and the nodes expose their own families too.
            assert _query(web, "xcwl_rpc_server_duration_seconds_count{service=\"xporty.trader.v1.TraderService\","
                               "method=\"PlaceOrder\",code=\"OK\"}")
            assert _query(web, "xcwl_events_ingested_total")
            assert _query(web, "xcwl_policy_applied_version > 0")
            # Gauges read from the stores at scrape time reach Prometheus from every process: the trades moved the
            # pair's utilisation, each node reports its queue depths and its sync lag per exporter.
            utilisation = await _eventually(
                lambda: _safe_query(web, 'xcwl_pair_utilisation_ratio{pair="wl-a/wl-b"} > 0'), 30, "utilisation")
            assert 0 < float(utilisation[0]["value"][1]) < 1, utilisation
            depths = _query(web, "xcwl_event_queue_depth")
            assert {d["metric"]["instance"] for d in depths} == set(targets[1:]), depths
            assert len(_query(web, "xcwl_compensation_outbox_depth")) == 2
            lags = _query(web, "xcwl_catalog_sync_lag_seconds")
            assert {(x["metric"]["instance"], x["metric"]["exporter"]) for x in lags} >= {
                (targets[1], "wl-b"), (targets[2], "wl-a")}, lags
            assert _query(web, 'xcwl_stream_subscribers{stream="signals"} >= 2')
            # The CP shows the sync lag the importers reported (each node's first report names its exporters).
            reported = await _eventually(lambda: _safe_query(web, "xcwl_reported_sync_lag_seconds"), 30,
                                         "reported sync lag")
            assert {("wl-b", "wl-a"), ("wl-a", "wl-b")} <= {
                (x["metric"]["importer"], x["metric"]["exporter"]) for x in reported}, reported
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()


def _start_prometheus(binary: str, config: Path, tsdb: Path, port: int, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)


def _safe_query(port: int, expr: str) -> list[dict[str, Any]]:
    try:
        return _query(port, expr)
    except OSError:
        return []


def _p99_both(port: int) -> list[dict[str, Any]] | None:
    series = [s for s in _safe_query(port, P99) if math.isfinite(float(s["value"][1]))]
    return series if len(series) == 2 else None
