"""Fixtures of the node's risk/telemetry tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.wl_node.catalog.helpers import DbFactory, db_factory


@pytest.fixture
def sqlite_dbs(tmp_path: Path) -> Iterator[DbFactory]:
    """One fresh SQLite database per process (for tests whose logic does not depend on the backend)."""
    with db_factory("sqlite", tmp_path) as make:
        yield make
