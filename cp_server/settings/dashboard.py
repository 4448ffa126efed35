"""Settings of the dashboard and the rollups it reads (``CpSettings.dashboard``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class DashboardSettings:
    """Every knob of the dashboard, with its default."""

    http_listen: str = ""
    """``HOST:PORT`` of the dashboard (HTTPS with the CP's certificate); empty = no dashboard."""
    link_ttl: dt.timedelta = dt.timedelta(minutes=5)
    """How long a one-time login link (``xcwl dashboard login``) may be opened."""
    session_ttl: dt.timedelta = dt.timedelta(hours=8)
    """Lifetime of a browser session opened by a link (then: a new link)."""
    hour_retention: dt.timedelta = dt.timedelta(days=90)
    """Hourly rollups are deleted once their hour ended this long ago (the monthly ones keep the history)."""
    month_retention: dt.timedelta = dt.timedelta(days=1100)
    """Monthly rollups are deleted once their month ended this long ago (the current month is always kept)."""
