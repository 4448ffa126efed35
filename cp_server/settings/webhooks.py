"""Knobs of webhook delivery (part of ``CpSettings``: the ``[webhooks]`` table, ``XCWL_CP__WEBHOOKS__*`` and the
``--webhook-*`` flags of ``xcwl cp serve``)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TOLERANCE_S = 300
"""Receivers refuse a signature older (or newer) than this: the replay window."""


@dataclass(frozen=True)
class WebhookConfig:
    """Knobs of the delivery loop, with their defaults."""

    max_attempts: int = 10
    """Attempts before a delivery goes to the dead letter (1 = no retry)."""
    base_backoff_s: float = 1.0
    """Delay before the first retry; doubled per attempt, with full jitter."""
    max_backoff_s: float = 3600.0
    """Cap of the retry delay."""
    replay_window_s: float = float(DEFAULT_TOLERANCE_S)
    """The receivers' replay window (tolerance) the deliveries are made for: each attempt is signed just before its
    POST, and ``timeout_s`` must stay below this, so an honest attempt never arrives outside the window. Receivers
    refuse a signature timestamp further than this from their clock (``signature.verify(tolerance_s=…)``)."""
    timeout_s: float = 5.0
    """Deadline of one HTTP POST."""
    recheck_interval_s: float = 60.0
    """Longest sleep with nothing due: a safety re-check only (a queued event wakes the loop, and it sleeps
    exactly until the next retry falls due)."""
    notify_channel: str = "xcwl_webhooks"
    """PostgreSQL channel a queueing transaction notifies, so every CP replica's loop wakes at its commit."""
    batch: int = 50
    """Due deliveries sent per pass."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.batch < 1:
            raise ValueError("max_attempts and batch must be >= 1")
        if not 0 < self.base_backoff_s <= self.max_backoff_s:
            raise ValueError("backoff must satisfy 0 < base_backoff_s <= max_backoff_s")
        if not 0 < self.timeout_s < self.replay_window_s:
            raise ValueError("timeout_s must be > 0 and below replay_window_s (a slower POST could arrive stale)")
        if not self.recheck_interval_s > 0:
            raise ValueError("recheck_interval_s must be > 0")
