"""The node's SQL store: engine and Alembic migrations (one branch per feature in ``migrations/versions``)."""

from .engine import MIGRATIONS_DIR, VERSION_TABLE, NodeStoreMismatch, claim_node, migrate, open_store

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE", "NodeStoreMismatch", "claim_node", "migrate", "open_store"]
