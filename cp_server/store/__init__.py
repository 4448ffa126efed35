"""The CP's store: WL registry, pair policies, versions, node status and audit log (SQLAlchemy Core + Alembic)."""
