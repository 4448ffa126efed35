"""Fixtures every test package uses: a fresh PKI and the two real stores (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_postgres_database, sqlite_url
from tests.support.pki import PkiFixture, make_test_pki


@pytest.fixture
def pki(tmp_path: Path) -> PkiFixture:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def sqlite_db_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
def postgres_db_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url
