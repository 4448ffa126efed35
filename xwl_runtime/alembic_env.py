"""The body of every Alembic ``env.py`` here: migrate on the connection handed over by ``db.upgrade``."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context


def run_migrations(target_metadata: sa.MetaData | None) -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through xwl_runtime.db.upgrade, which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.attributes.get("version_table", "alembic_version"),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
