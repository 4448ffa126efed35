"""The WL node's Prometheus metrics (names and labels: docs/metrics.md).

Labels are bounded: the peer WL (``exporter``/``peer``), an outcome or stage from a fixed vocabulary, never an id.
Figures that already live in memory (the applied policy version, the view's age, each exporter's sync lag) are
read at scrape time; queue depths kept in the node's tables are read from the store at scrape time by the feature
that owns the table (``track_store``); the rest are counted where they happen, so nothing here polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from xwl_runtime.breaker import BreakerState
from xwl_runtime.metrics import LATENCY_BUCKETS_S, GaugeSpec, RpcMetrics, Samples, StoreGauges

BREAKER_LEVEL = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
"""Value of ``xcwl_breaker_state``: 0 closed, 1 half-open, 2 open."""

ORDER_OUTCOMES = ("confirmed", "denied", "cancelled", "refused", "unavailable", "error")
"""``outcome`` label of ``xcwl_checkout_orders_total``."""

SIGNAL_STAGES = ("received", "applied", "acked")
"""``stage`` label of ``xcwl_signals_total``."""

SYNC_LAG = GaugeSpec("xcwl_catalog_sync_lag_seconds",
                     "Seconds since this node last knew its copy of the exporter's catalog current.", ("exporter",))
OUTBOX_DEPTH = GaugeSpec("xcwl_compensation_outbox_depth", "CancelOrders owed to exporters, not yet acknowledged.")
EVENT_QUEUE_DEPTH = GaugeSpec("xcwl_event_queue_depth", "Events waiting to be shipped to the CP.")


class NodeMetrics:
    """Every metric family a node exports, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._order_listeners: list[Callable[[str, str, float | None], None]] = []
        self._breaker_listeners: list[Callable[[str, str], None]] = []
        self._known_exporters: set[str] = set()
        r = self.registry
        self.rpc = RpcMetrics(r)
        self.orders = Counter("xcwl_checkout_orders", "PlaceOrder outcomes seen by this node as importer.",
                              ["exporter", "outcome"], registry=r)
        self.confirmation_seconds = Histogram(
            "xcwl_checkout_confirmation_seconds",
            "Time from sending PlaceOrder to the exporter's answer (retries included), seen by the importer.",
            ["exporter"], registry=r, buckets=LATENCY_BUCKETS_S,
        )
        self.breaker_state = Gauge("xcwl_breaker_state", "Circuit to a peer exporter: 0 closed, 1 half-open, 2 open.",
                                   ["peer"], registry=r)
        self.breaker_transitions = Counter("xcwl_breaker_transitions", "Circuit state changes per peer.",
                                           ["peer", "to"], registry=r)
        self.policy_version = Gauge("xcwl_policy_applied_version", "Policy version this node applied.", registry=r)
        self.policy_age_seconds = Gauge("xcwl_policy_view_age_seconds",
                                        "Seconds since the CP last confirmed the applied view (drift bound).",
                                        registry=r)
        self.signals = Counter("xcwl_signals", "CP signals by stage: received, applied, acked.", ["stage"],
                               registry=r)
        self.pair_alerts = Gauge("xcwl_pair_alert_open", "1 while the CP reports a pair of this WL at >= 80%.",
                                 ["peer"], registry=r)

    def know_exporters(self, exporters: Iterable[str]) -> None:
        """Start the per-exporter order series at zero for every exporter this node may buy from, so the first
        checkouts to a peer show as an increase (``rate``/``histogram_quantile`` over a series that appears
        already counted would see none). Bounded like the label itself: the pair's peers in the policy view."""
        for exporter in exporters:
            if exporter in self._known_exporters:
                continue
            self._known_exporters.add(exporter)
            self.confirmation_seconds.labels(exporter)
            for outcome in ORDER_OUTCOMES:
                self.orders.labels(exporter, outcome)

    def add_order_listener(self, listener: Callable[[str, str, float | None], None]) -> None:
        """Also tell ``listener(exporter, outcome, seconds)`` about every order (the operations reporter)."""
        self._order_listeners.append(listener)

    def add_breaker_listener(self, listener: Callable[[str, str], None]) -> None:
        """Also tell ``listener(peer, new_state)`` about every breaker transition."""
        self._breaker_listeners.append(listener)

    def track_policy(self, version: Callable[[], int], age_s: Callable[[], float]) -> None:
        """Read the applied version and the view's age at scrape time."""
        self.policy_version.set_function(lambda: float(version()))
        self.policy_age_seconds.set_function(age_s)

    def track_sync_lag(self, lags: Callable[[], Mapping[str, float]]) -> None:
        """Report ``lags()`` (exporter → seconds) as ``xcwl_catalog_sync_lag_seconds`` at scrape time."""
        self.registry.register(_LagCollector(lags))

    def track_store(self, specs: Sequence[GaugeSpec], read: Callable[[], Awaitable[Samples]]) -> None:
        """Report gauges read from the node's store at scrape time (call from the node's event loop)."""
        StoreGauges(specs, read, asyncio.get_running_loop()).register(self.registry)

    def breaker_changed(self, peer: str, new: BreakerState) -> None:
        self.breaker_state.labels(peer).set(BREAKER_LEVEL[new])
        self.breaker_transitions.labels(peer, new.value).inc()
        for listener in self._breaker_listeners:
            listener(peer, new.value)

    def order(self, exporter: str, outcome: str, seconds: float | None) -> None:
        self.orders.labels(exporter, outcome).inc()
        if seconds is not None:
            self.confirmation_seconds.labels(exporter).observe(seconds)
        for listener in self._order_listeners:
            listener(exporter, outcome, seconds)


class _LagCollector:
    """``xcwl_catalog_sync_lag_seconds`` from the catalog sync's in-memory figures."""

    def __init__(self, lags: Callable[[], Mapping[str, float]]) -> None:
        self._lags = lags

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(SYNC_LAG.name, SYNC_LAG.documentation, labels=list(SYNC_LAG.labels))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(SYNC_LAG.name, SYNC_LAG.documentation, labels=list(SYNC_LAG.labels))
        for exporter, seconds in sorted(self._lags().items()):
            family.add_metric([exporter], seconds)
        yield family
