"""Every gauge of docs/metrics.md that a store or a loop owns is fed: scraped from the real registries (text format,
from another thread, like Prometheus) after the test caused the change, on a real CP and two real nodes."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory
from tests.wl_node.risk.harness import World, ready, telemetry_of, world
from wl_node.app import NodeApp
from wl_node.checkout.tables import compensations
from wl_node.telemetry.queue import enqueue
from xporty.common.v1 import money_pb2
from xporty.cp.v1 import telemetry_pb2

K = telemetry_pb2.LedgerEventKind
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(registry: CollectorRegistry) -> Samples:
    """The registry as Prometheus reads it: text format, rendered off the event loop."""
    text = (await asyncio.to_thread(generate_latest, registry)).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _event(wl_id: str, kind: int, order_id: str, amount: str) -> telemetry_pb2.LedgerEvent:
    return telemetry_pb2.LedgerEvent(
        wl_id=wl_id, correlation_id=f"cid-{order_id}", kind=kind, order_id=order_id, exporter_wl="wl-a",
        importer_wl="wl-b", amount=money_pb2.Money(currency="XPY-A", amount=amount), quantity=1)


async def _queue_trade(w: World, order_id: str, amount: str) -> None:
    """Both sides record one order wl-a → wl-b in their event queues; nothing ships yet."""
    for wl_id, kind in (("wl-a", K.LEDGER_EVENT_KIND_EXPORT_CONFIRMED), ("wl-b", K.LEDGER_EVENT_KIND_IMPORT_FINALIZED)):
        async with w.nodes[wl_id].engine.begin() as conn:
            await enqueue(conn, _event(wl_id, kind, order_id, amount))


def _ship(node: NodeApp) -> None:
    shipper = telemetry_of(node).shipper
    assert shipper is not None
    shipper.kick()


async def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return (await scrape(registry)).get((name, tuple(sorted(labels.items()))))


async def _until(registry: CollectorRegistry, name: str, expected: float, timeout: float = 10.0,
                 **labels: str) -> None:
    deadline = time.monotonic() + timeout
    while (value := await _value(registry, name, **labels)) != expected:
        assert time.monotonic() < deadline, f"{name}{labels} = {value}, expected {expected}"
        await asyncio.sleep(0.1)


async def test_cp_and_node_gauges_follow_the_facts(tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b"], limit="100") as w:
        a, b = await w.start_node("wl-a"), await w.start_node("wl-b")
        await ready(a)
        await ready(b)
        cp = w.cp.ctx.metrics.registry

        # Stream subscribers: each node holds one signal stream and one policy stream.
        await _until(cp, "xcwl_stream_subscribers", 2, stream="signals")
        await _until(cp, "xcwl_stream_subscribers", 2, stream="policies")
        # Every registered pair has a utilisation (0 before any trade); no alert is open.
        samples = await scrape(cp)
        assert samples[("xcwl_pair_utilisation_ratio", (("pair", "wl-a/wl-b"),))] == 0
        assert not [k for k in samples if k[0] == "xcwl_alerts_open"]

        # Events written by both sides wait in their queues until the shipper runs.
        await _queue_trade(w, "o-1", "85.00")
        for node in (a, b):
            assert await _value(node.ctx.metrics.registry, "xcwl_event_queue_depth") == 1
        for node in (a, b):
            _ship(node)
        for node in (a, b):
            await _until(node.ctx.metrics.registry, "xcwl_event_queue_depth", 0)
        # The CP counted the order: 85% of the limit, one THRESHOLD alert open.
        await _until(cp, "xcwl_pair_utilisation_ratio", 0.85, pair="wl-a/wl-b")
        await _until(cp, "xcwl_alerts_open", 1, reason="THRESHOLD")

        # A CancelOrder owed by the importer counts until the exporter acknowledges it.
        now = dt.datetime.now(dt.UTC)
        assert await _value(b.ctx.metrics.registry, "xcwl_compensation_outbox_depth") == 0
        async with b.engine.begin() as conn:
            await conn.execute(compensations.insert().values(
                checkout_id="c-1", exporter_wl="wl-a", order_id="o-9", cancel_key="k-1", reason="TEST",
                correlation_id="cid-c-1", attempts=0, last_error="", next_attempt_at=now + dt.timedelta(hours=1),
                acknowledged_at=None, created_at=now))
        assert await _value(b.ctx.metrics.registry, "xcwl_compensation_outbox_depth") == 1
        async with b.engine.begin() as conn:
            await conn.execute(sa.update(compensations).values(acknowledged_at=now))
        assert await _value(b.ctx.metrics.registry, "xcwl_compensation_outbox_depth") == 0

        # Catalog sync lag: one series per exporter the node imports from; the registry's trader endpoint of
        # wl-b is unreachable, so wl-a's copy was never current and its lag grows with time.
        first = await _value(a.ctx.metrics.registry, "xcwl_catalog_sync_lag_seconds", exporter="wl-b")
        assert first is not None and first >= 0
        await asyncio.sleep(1.0)
        later = await _value(a.ctx.metrics.registry, "xcwl_catalog_sync_lag_seconds", exporter="wl-b")
        assert later is not None and later - first >= 0.9
        assert [k for k in await scrape(a.ctx.metrics.registry) if k[0] == "xcwl_catalog_sync_lag_seconds"] == [
            ("xcwl_catalog_sync_lag_seconds", (("exporter", "wl-b"),))]

        # A node that goes away leaves the CP's streams.
        await b.stop(0)
        del w.nodes["wl-b"]
        await _until(cp, "xcwl_stream_subscribers", 1, stream="signals")
        await _until(cp, "xcwl_stream_subscribers", 1, stream="policies")


@pytest.mark.parametrize("scrapes", [3])
async def test_an_idle_scrape_reads_the_store_without_blocking_the_loop(
        tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory, scrapes: int) -> None:
    """Scrape-time reads run on the owner's loop: a scrape from the loop's own thread yields no store samples
    instead of deadlocking, and scrapes from another thread keep working."""
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b"]) as w:
        cp = w.cp.ctx.metrics.registry
        assert cp.get_sample_value("xcwl_pair_utilisation_ratio", {"pair": "wl-a/wl-b"}) is None  # on the loop
        for _ in range(scrapes):
            assert await _value(cp, "xcwl_pair_utilisation_ratio", pair="wl-a/wl-b") == 0
