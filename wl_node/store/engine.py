"""Opening the node's store: apply every migration branch, build the async engine, claim the store for this WL.

Every node feature owns an Alembic branch in ``migrations/versions`` (``node_core`` here; the catalog adds its
own); ``xwl_runtime.db.upgrade`` applies all heads. ``node_meta`` records which WL a store belongs to, so a node
started with another WL's database refuses to start instead of mixing two WLs' data.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from xwl_runtime import db

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "node_alembic_version"
POOL_SIZE = 10
"""Connections of the node's async engine on PostgreSQL."""
SQLITE_POOL_SIZE = 10
"""Connections of the node's async engine on SQLite. Writers take turns (``BEGIN IMMEDIATE``), but readers do not:
every peer's catalog pull reads through this pool, and with 49 peers pulling after a publish, 3 connections queued
the next publish behind the pulls past its deadline (``xcwl bench mesh --nodes 50``). Each connection is a thread
with its own page and statement caches (≈ 0.4 MiB resident); the order desk's hot path has its own (``TxRunner``)."""

metadata = sa.MetaData()
node_meta = sa.Table(
    "node_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)


class NodeStoreMismatch(Exception):
    """The store belongs to another WL."""


def migrate(url: str) -> None:
    """Apply every node migration branch to ``url`` (blocking; idempotent)."""
    db.upgrade(url, MIGRATIONS_DIR, version_table=VERSION_TABLE)


async def claim_node(engine: AsyncEngine, wl_id: str) -> None:
    """Record ``wl_id`` as the store's owner on first use; refuse a store owned by another WL."""
    async with engine.begin() as conn:
        owner = await conn.scalar(sa.select(node_meta.c.value).where(node_meta.c.key == "wl_id"))
        if owner is None:
            await conn.execute(sa.insert(node_meta).values(key="wl_id", value=wl_id))
        elif owner != wl_id:
            raise NodeStoreMismatch(f"the node store belongs to WL {owner!r}, not {wl_id!r}")


async def migrate_in_child(url: str) -> None:
    """``migrate`` in a short-lived child process: Alembic, Mako and Pygments (~12 MB resident) then never load
    into the long-lived node process. RuntimeError with the child's last output when it fails."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from wl_node.store.engine import migrate; migrate(sys.argv[1])", url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        tail = output.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError("migrating the node store failed: " + " | ".join(tail))


async def open_store(url: str, wl_id: str, *, migrate_in_process: bool = True) -> AsyncEngine:
    """Migrate, connect and claim the store of the node of ``wl_id`` (``migrate_in_process=False``: migrate in a
    child process, as ``xcwl wl serve`` does to keep the node lean)."""
    if migrate_in_process:
        await asyncio.to_thread(migrate, url)
    else:
        await migrate_in_child(url)
    engine = db.create_engine(url, pool_size=SQLITE_POOL_SIZE if db.is_sqlite(url) else POOL_SIZE)
    try:
        await claim_node(engine, wl_id)
    except BaseException:
        await engine.dispose()
        raise
    return engine
