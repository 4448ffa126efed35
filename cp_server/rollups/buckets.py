"""The time buckets of the rollups: the UTC hour and the UTC month an instant falls in."""

from __future__ import annotations

import datetime as dt


def hour_of(at: dt.datetime) -> dt.datetime:
    """The start of ``at``'s UTC hour."""
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def month_of(at: dt.datetime) -> dt.datetime:
    """The first instant of ``at``'s UTC month."""
    return at.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(month: dt.datetime) -> dt.datetime:
    """The first instant of the month after ``month`` (itself a month start)."""
    return month.replace(year=month.year + 1, month=1) if month.month == 12 else month.replace(month=month.month + 1)


def month_label(month: dt.datetime) -> str:
    """``YYYY-MM``."""
    return f"{month.year:04d}-{month.month:02d}"
