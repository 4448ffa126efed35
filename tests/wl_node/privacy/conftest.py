"""Fixtures of the privacy tests: per-node databases (catalog worlds) and an importer database (checkout)."""

from tests.wl_node.catalog.helpers import dbs  # noqa: F401 - fixture
from tests.wl_node.checkout.conftest import importer_url  # noqa: F401 - fixture
