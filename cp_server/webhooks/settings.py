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
    scan_interval_s: float = 2.0
    """Longest sleep between two looks at the outbox."""
    batch: int = 50
    """Due deliveries sent per pass."""
