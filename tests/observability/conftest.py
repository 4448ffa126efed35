"""Fixtures of the observability tests."""

from tests.wl_node.conftest import node_dbs  # noqa: F401 - fixture (one database kind per run: SQLite, PostgreSQL)
