"""What every page is made of: named figures and tables of plain values (text, integers, None), so the HTML, the
JSON API and the CSV downloads show exactly the same numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Value = str | int | bool | None


def text(value: Decimal | dt.datetime | dt.timedelta | None) -> str | None:
    """Decimals in plain notation, times in ISO-8601 UTC, durations in whole seconds."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    return str(int(value.total_seconds()))


@dataclass
class Table:
    """Columns and rows of one downloadable table."""

    columns: list[str]
    rows: list[list[Value]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows}

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else v for v in row])
        return out.getvalue()


@dataclass
class Page:
    """One page's data: its figures (name → value) and tables (name → table)."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"page": self.name, "figures": self.figures,
                "tables": {k: t.to_json() for k, t in self.tables.items()}}
