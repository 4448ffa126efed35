"""Knobs of webhook delivery (part of ``CpSettings``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebhookConfig:
    """Knobs of the delivery loop, with their defaults."""

    max_attempts: int = 10
    """Attempts before a delivery goes to the dead letter."""
    base_backoff_s: float = 1.0
    """Delay before the first retry; doubled per attempt, with full jitter."""
    max_backoff_s: float = 3600.0
    """Cap of the retry delay."""
    timeout_s: float = 5.0
    """Deadline of one HTTP POST."""
    recheck_interval_s: float = 60.0
    """Longest sleep with nothing due: a safety re-check only (a queued event wakes the loop, and it sleeps
    exactly until the next retry falls due)."""
    notify_channel: str = "xcwl_webhooks"
    """PostgreSQL channel a queueing transaction notifies, so every CP replica's loop wakes at its commit."""
    batch: int = 50
    """Due deliveries sent per pass."""
