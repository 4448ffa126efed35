"""Alembic environment of the WL node store (run through ``xwl_runtime.db.upgrade``)."""

from xwl_runtime.alembic_env import run_migrations

run_migrations(None)
