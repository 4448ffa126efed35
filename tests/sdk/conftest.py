"""SDK tests run real nodes (and a CP) built by their composition roots; one database per process."""

from tests.wl_node.conftest import node_dbs  # noqa: F401 - fixture
