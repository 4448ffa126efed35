"""Levels of a catalog sync lag: what the node reports to the CP and the CP shows.

The lag itself moves all the time (a healthy offer stream keeps it between 0 and the heartbeat period, a broken one
lets it grow every second), so the node reports its **level**, and only when the level changes: an idle node
with current copies sends nothing, and a copy that stays stale for a day costs at most ``len(LEVELS_S)`` reports.

Level 0 means current: below 30 s, the TTL and fallback cap of the sync (a healthy stream never gets there: a
heartbeat missed for 25 s makes the importer pull at once). Then 30 s, 1, 2, 5, 10, 30 min, 1, 2, 6, 12 h, 1 day:
a level is the lower bound of its band.
"""

from __future__ import annotations

import bisect

LEVELS_S = (30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0)
"""Lower bounds (seconds) of the stale levels; below the first the copy counts as current (level 0)."""


def lag_level(seconds: float) -> float:
    """The level of a lag of ``seconds``: 0 (current) or the largest bound of ``LEVELS_S`` it reached."""
    i = bisect.bisect_right(LEVELS_S, seconds)
    return 0.0 if i == 0 else LEVELS_S[i - 1]
