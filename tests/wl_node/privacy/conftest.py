"""Per-node databases for multi-node privacy tests."""

from tests.wl_node.catalog.helpers import dbs  # noqa: F401 - fixture
