"""An idle node stays within the idle budget: after its first operations report it sends none while nothing
changes — even with its catalog sync busy proving its copy current on every offer-stream heartbeat."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests.support.pki import PkiFixture
from tests.wl_node import test_cross_wl_trade as trade
from tests.wl_node.catalog.helpers import DbFactory
from tests.wl_node.conftest import eventually
from tests.wl_node.operations.test_reports_and_slo import _reporter
from wl_node.cadence import IdleCadence

pytestmark = pytest.mark.timeout(120)

FAST = IdleCadence(offer_heartbeat_s=0.2, offer_stream_timeout_s=1.0)
"""Heartbeats every 200 ms: an idle window of 3 s holds about 15 of them per stream."""
IDLE_S = 3.0


async def test_an_idle_node_sends_no_report_after_the_first_while_heartbeats_flow(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_of = trade.node_settings

    def fast_settings(*args: Any, **kwargs: Any) -> Any:
        return dataclasses.replace(settings_of(*args, **kwargs), cadence=FAST)

    monkeypatch.setattr(trade, "node_settings", fast_settings)
    async with trade.world(tmp_path, pki, node_dbs, ["wl-b"]) as w:
        a, b = w.nodes["wl-a"], w.nodes["wl-b"]
        reporters = {"wl-a": _reporter(a), "wl-b": _reporter(b)}
        for r in reporters.values():
            r.config = type(r.config)(batch_delay_s=0.1)
        await trade._publish(w, "o-1", "10.00", 5)
        sync = b.features.catalog.sync
        await eventually(lambda: sync.stats.pulls >= 1 and sync.lags().get("wl-a", 99.0) < 1.0, timeout=20)
        await eventually(lambda: reporters["wl-b"].reports_sent >= 1, timeout=10)  # the start's lag levels
        await asyncio.sleep(0.5)  # anything still in a batch goes out

        activity = 0
        notify = sync.on_activity
        assert notify is not None

        def counted() -> None:
            nonlocal activity
            activity += 1
            notify()

        sync.on_activity = counted
        sent = {wl: r.reports_sent for wl, r in reporters.items()}
        pulls = sync.stats.pulls
        await asyncio.sleep(IDLE_S)
        assert {wl: r.reports_sent for wl, r in reporters.items()} == sent  # idle: not one report
        assert sent["wl-a"] == 0  # the exporter imports nothing and sold nothing: it never reported
        assert activity >= 5  # the importer's sync did learn things (each heartbeat proved its copy current)
        assert sync.stats.pulls == pulls  # ... without a pull: the stream was healthy throughout
        assert sync.lags()["wl-a"] < FAST.offer_heartbeat_s * 3
