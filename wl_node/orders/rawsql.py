"""Hot-path SQL without per-call SQLAlchemy work: SQL text fixed once per dialect, run on the raw DBAPI connection.

Why: building, compiling (even from the compiled cache), binding and processing results of a Core statement costs
~100–300 µs of Python per statement, and PlaceOrder runs several in the single SQLite writer thread, which holds
the GIL meanwhile. The same statement on the driver's own connection costs a few µs on sqlite3, and psycopg
prepares a statement server-side after a few executions of the same text (``prepare_threshold``), so the text must
be fixed: it is, per dialect.

These helpers run INSIDE a transaction that ``TxRunner`` opened through SQLAlchemy on the same DBAPI connection,
so a raw statement and a Core statement of a guard or hook share one transaction and one commit.

Values must be what the driver stores for the SQLAlchemy type of the column: ``db_time`` gives exactly what
``UtcDateTime`` binds (naive UTC text on SQLite, aware UTC on PostgreSQL), ``read_time`` reverses it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

_NAMED = re.compile(r"(?<![:\w]):(\w+)")
_DIALECTS: dict[str, sa.engine.Dialect] = {}


def _dialect(name: str) -> sa.engine.Dialect:
    """The dialect Core statements are compiled with, made on first use: a node on SQLite never imports the
    PostgreSQL dialect (and the reverse). Named parameters on both sides: sqlite3 takes ``:name``, psycopg
    ``%(name)s``, both from the same dict."""
    dialect = _DIALECTS.get(name)
    if dialect is None:
        if name == "sqlite":
            from sqlalchemy.dialects import sqlite

            dialect = sqlite.dialect(paramstyle="named")
        else:
            from sqlalchemy.dialects.postgresql import psycopg

            dialect = psycopg.dialect(paramstyle="pyformat")
        _DIALECTS[name] = dialect
    return dialect


def is_sqlite(conn: sa.Connection) -> bool:
    return conn.dialect.name == "sqlite"


def driver(conn: sa.Connection) -> Any:
    """The driver's own connection (``sqlite3.Connection`` / ``psycopg.Connection``) under ``conn``."""
    return conn.connection.driver_connection


class Sql:
    """One statement's text per dialect, written with ``:name`` parameters (or compiled from a Core statement for
    a dialect when first run on it)."""

    __slots__ = ("_texts", "_statement", "defaults")

    def __init__(self, text: str, *, postgres_text: str | None = None) -> None:
        self._texts = {"sqlite": text,
                       "postgresql": _NAMED.sub(r"%(\1)s", postgres_text if postgres_text is not None else text)}
        self._statement: sa.ClauseElement | None = None
        self.defaults: dict[str, Any] = {}

    @classmethod
    def of(cls, statement: sa.ClauseElement) -> Sql:
        """From a Core statement whose parameters are all ``bindparam`` (literal values are inlined)."""
        out = cls.__new__(cls)
        out._texts = {}
        out._statement = statement
        out.defaults = {}
        return out

    def text(self, dialect_name: str) -> str:
        """The statement's text for ``dialect_name`` ("sqlite" or "postgresql")."""
        name = "sqlite" if dialect_name == "sqlite" else "postgresql"
        text = self._texts.get(name)
        if text is None:
            assert self._statement is not None  # texts given at construction exist for both dialects
            compiled = self._statement.compile(dialect=_dialect(name))
            # Literal values of the statement (e.g. ``feed_id == 1``) became parameters: keep their values.
            self.defaults = {k: v for k, v in compiled.params.items() if v is not None}
            text = self._texts[name] = str(compiled)
        return text

    def run(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> Any:
        """Execute in ``conn``'s transaction; returns the driver cursor (``rowcount``, ``fetchone``…)."""
        dialect = conn.dialect
        text = self.text(dialect.name)
        if self.defaults:
            params = {**self.defaults, **(params or {})}
        driver: Any = conn.connection.driver_connection  # a DBAPI connection: set while ``conn`` is open
        try:
            return driver.execute(text, params or {})
        except dialect.loaded_dbapi.Error as err:
            # The same exception classes as through SQLAlchemy (IntegrityError, OperationalError, …).
            raise sa.exc.DBAPIError.instance(text, params, err, dialect.loaded_dbapi.Error,
                                             dialect=dialect) from err


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def db_time(sqlite_db: bool, value: dt.datetime) -> Any:
    """What ``UtcDateTime`` binds for ``value`` (timezone-aware)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: use timezone-aware UTC")
    value = value.astimezone(dt.UTC)
    if sqlite_db:
        return value.strftime(_SQLITE_TIME)  # SQLAlchemy's SQLite DATETIME storage format
    return value


def read_time(value: Any) -> dt.datetime | None:
    """A stored ``UtcDateTime`` as timezone-aware UTC."""
    if value is None:
        return None
    when: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)
