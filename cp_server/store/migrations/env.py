"""Alembic environment of the CP: every feature's branch lives in ``versions/`` and is applied at start-up."""

from xwl_runtime.alembic_env import run_migrations

run_migrations(None)
