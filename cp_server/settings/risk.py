"""Risk knobs of the CP: thresholds, hysteresis, trend window, reconciliation grace.

A small frozen dataclass of its own so that the composition root can fold it into ``CpSettings`` later
(``CpSettings.risk: RiskSettings = field(default_factory=RiskSettings)``) without touching this package.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class RiskSettings:
    """Every risk knob, with its default. Fractions are of the pair's imbalance limit (1 = 100%)."""

    alert_threshold: Decimal = Decimal("0.80")
    """Utilisation at or above which one ALERT is raised (per episode)."""
    disable_threshold: Decimal = Decimal("1.00")
    """Utilisation strictly above which the deficit direction gets a DISABLE signal."""
    reenable_threshold: Decimal = Decimal("0.60")
    """Utilisation strictly below which an episode ends: alert closed, automatic disable lifted (hysteresis)."""
    trend_window: dt.timedelta = dt.timedelta(hours=1)
    """Window over which the rate of change of net_delta is measured."""
    reconciliation_grace: dt.timedelta = dt.timedelta(minutes=5)
    """How long an order may stay EXPORT_CONFIRMED without IMPORT_FINALIZED / cancellation before it is a
    discrepancy."""
    discrepancy_pause_value: Decimal = Decimal("1000")
    """A reconciliation discrepancy (amount mismatch, one-sided cancellation, import never finalized) whose value
    in dispute, in the reference unit, exceeds this pauses the pair (``xcwl cp serve --discrepancy-pause-value``);
    every discrepancy raises an alert whatever its value."""
    reconcile_interval: dt.timedelta = dt.timedelta(seconds=5)
    """Period of the reconciliation loop (also prunes old trend points)."""
    max_batch: int = 5000
    """Largest PublishEvents batch accepted."""
    verify_workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    """Worker processes that verify the signatures of large PublishEvents batches (0 = verify in the CP process)."""
    verify_parallel_min: int = 64
    """Batches with at least this many events are verified by the workers; smaller ones inline."""
    signal_channel: str = "xcwl_signals"
    """PostgreSQL LISTEN/NOTIFY channel that tells the other CP replicas a signal was committed."""
    subscriber_queue: int = 1024
    """Signals buffered per WatchSignals stream before a slow subscriber is cut off (it resumes by sequence)."""
    digest_max_offers: int = 200
    """Most offers one ReportOffers digest may carry per destination (more is INVALID_ARGUMENT)."""
    digest_max_destinations: int = 256
    """Most destinations one ReportOffers call may name."""
    plan_max_offers: int = 10
    """Most reverse-direction offers a DISABLE signal's compensation plan lists."""
    plan_digest_max_age: dt.timedelta = dt.timedelta(minutes=10)
    """A digest older than this (by its generation time) is not used for a plan (nodes refresh every minute)."""

    def __post_init__(self) -> None:
        if not (Decimal(0) < self.reenable_threshold < self.alert_threshold <= self.disable_threshold):
            raise ValueError("risk thresholds must satisfy 0 < reenable < alert <= disable")
        if self.trend_window <= dt.timedelta(0) or self.reconciliation_grace < dt.timedelta(0):
            raise ValueError("trend_window must be > 0 and reconciliation_grace >= 0")
        if self.verify_workers < 0 or self.verify_parallel_min < 1:
            raise ValueError("verify_workers must be >= 0 and verify_parallel_min >= 1")
        if self.max_batch < 1 or self.subscriber_queue < 1:
            raise ValueError("max_batch and subscriber_queue must be >= 1")
        if min(self.digest_max_offers, self.digest_max_destinations, self.plan_max_offers) < 1:
            raise ValueError("digest_max_offers, digest_max_destinations and plan_max_offers must be >= 1")
        if not self.discrepancy_pause_value.is_finite() or self.discrepancy_pause_value < 0:
            raise ValueError("discrepancy_pause_value must be a finite decimal >= 0")
        if self.plan_digest_max_age <= dt.timedelta(0):
            raise ValueError("plan_digest_max_age must be > 0")
