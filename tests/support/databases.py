"""Real databases for tests: SQLite in a temp dir, and a fresh PostgreSQL database per test.

PostgreSQL runs are mandatory when ``XCWL_REQUIRE_POSTGRES=1`` (CI): an unreachable server fails the test
instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

PG_ADMIN_DSN = os.environ.get("XCWL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_required() -> bool:
    return os.environ.get("XCWL_REQUIRE_POSTGRES", "") == "1"


def _admin_connect() -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)


def postgres_available() -> bool:
    try:
        with _admin_connect():
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    if not postgres_available():
        if postgres_required():
            pytest.fail(f"PostgreSQL is required (XCWL_REQUIRE_POSTGRES=1) but {PG_ADMIN_DSN} is unreachable")
        pytest.skip("PostgreSQL not reachable")
    name = f"xcwl_t_{uuid.uuid4().hex[:16]}"
    with _admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(tmp: Path, name: str = "store") -> str:
    return f"sqlite:///{tmp / (name + '.db')}"
