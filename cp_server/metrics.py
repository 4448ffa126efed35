"""The CP's Prometheus metrics (names and labels: docs/metrics.md).

Labels are bounded: the event kind, a refusal reason from the error vocabulary, the pair as ``wl-a/wl-b`` (one
series per registered pair), the stream name. Subscribers and open alerts are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from xwl_runtime.metrics import RpcMetrics


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
        self.pair_utilisation = Gauge("xcwl_pair_utilisation_ratio", "Pair imbalance over its limit (1.0 = at limit).",
                                      ["pair"], registry=r)
        self.alerts_open = Gauge("xcwl_alerts_open", "Pairs at or above the 80% alert level.", registry=r)
        self.stream_subscribers = Gauge("xcwl_stream_subscribers", "Open server streams by kind.", ["stream"],
                                        registry=r)
        self.webhook_deliveries = Counter("xcwl_webhook_deliveries", "Webhook delivery attempts by result.",
                                          ["result"], registry=r)

    def track_subscribers(self, stream: str, count: Callable[[], int]) -> None:
        self.stream_subscribers.labels(stream).set_function(lambda: float(count()))
