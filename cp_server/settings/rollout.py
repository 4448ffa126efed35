"""Knobs of the automatic rollout hold (part of ``CpSettings``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class RolloutConfig:
    """When the CP holds a rollout stage on its own, with the defaults."""

    hold_window: dt.timedelta = dt.timedelta(minutes=15)
    """SLO window judged for each direction in pilot or expansion."""
    hold_check_interval: dt.timedelta = dt.timedelta(seconds=30)
    """How often the CP judges the directions in rollout."""
    hold_min_samples: int = 20
    """Order attempts a direction needs in the window before a breach counts (fewer: no data)."""
    confirmation_p99_s: Decimal = Decimal("0.5")
    """Target of the direction's confirmation p99 (seconds)."""
    error_rate: Decimal = Decimal("0.005")
    """Target of the direction's error rate (a breach is at or above it)."""
