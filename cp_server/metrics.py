"""The CP's Prometheus metrics (names and labels: docs/metrics.md).

Labels are bounded: the event kind, a refusal reason from the error vocabulary, the pair as ``wl-a/wl-b`` (one
series per registered pair), the stream name. Subscribers are read from memory at scrape time; utilisation and open
alerts from the store at scrape time (``track_store``), so they agree across CP replicas and nothing polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from xwl_runtime.metrics import GaugeSpec, RpcMetrics, Samples, StoreGauges

PAIR_UTILISATION = GaugeSpec("xcwl_pair_utilisation_ratio",
                             "Pair imbalance |net| over its limit (1.0 = at the limit).", ("pair",))
SYNC_LAG = GaugeSpec("xcwl_reported_sync_lag_seconds",
                     "Catalog sync lag of each importer's copy of each exporter, as the importers report it.",
                     ("importer", "exporter"))
ALERTS_OPEN = GaugeSpec("xcwl_alerts_open", "Open alerts by reason (THRESHOLD or a discrepancy reason).",
                        ("reason",))


class CpMetrics:
    """Every metric family the CP exports, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rpc = RpcMetrics(r)
        self.events_ingested = Counter("xcwl_events_ingested", "Signed events accepted by TelemetryService.",
                                       registry=r)
        self.events_refused = Counter("xcwl_events_refused", "Events refused by TelemetryService, by reason.",
                                      ["reason"], registry=r)
        self.stream_subscribers = Gauge("xcwl_stream_subscribers", "Open server streams by kind.", ["stream"],
                                        registry=r)
        self.webhook_deliveries = Counter("xcwl_webhook_deliveries", "Webhook delivery attempts by result.",
                                          ["result"], registry=r)

    def track_subscribers(self, stream: str, count: Callable[[], int]) -> None:
        self.stream_subscribers.labels(stream).set_function(lambda: float(count()))

    def track_store(self, specs: Sequence[GaugeSpec], read: Callable[[], Awaitable[Samples]]) -> None:
        """Report gauges read from the CP's store at scrape time (call from the CP's event loop)."""
        StoreGauges(specs, read, asyncio.get_running_loop()).register(self.registry)
