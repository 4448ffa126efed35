"""A scratch PostgreSQL database for one bench run, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def scratch_postgres(admin_dsn: str, prefix: str = "xcwl_bench") -> AsyncIterator[str]:
    """Create a fresh database on the server of ``admin_dsn``; yields its URL; drops it (connections forced off)."""
    import psycopg  # only the PostgreSQL runs need it

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
