"""Column types shared by every store of the CP and the nodes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in and out, on every backend.

    SQLite has no time zone type: values are stored as naive UTC, which keeps SQL comparisons such as
    ``expires_at > :now`` correct because both sides of a comparison go through this same conversion. A naive
    datetime is refused (``ValueError``): time is UTC and says so.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use timezone-aware UTC")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        when: dt.datetime = value
        if when.tzinfo is None:
            return when.replace(tzinfo=dt.UTC)
        return when.astimezone(dt.UTC)
