"""Checkout tests run two nodes: the exporter on ``db_url`` and the importer on a second database of the same kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_postgres_database, sqlite_url
from tests.support.pki import PkiFixture
from tests.wl_node.checkout.harness import FakeIdentityCp, start_identity_cp
from xwl_runtime import db


@pytest.fixture
def importer_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    if db.is_sqlite(db_url):
        yield sqlite_url(tmp_path, "importer")
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
async def identity_cp(pki: PkiFixture) -> AsyncIterator[FakeIdentityCp]:
    cp = await start_identity_cp(pki)
    try:
        yield cp
    finally:
        await cp.stop()
