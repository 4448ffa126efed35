"""The node store: migrations apply (twice, harmlessly) and a store belongs to one WL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from wl_node.store import VERSION_TABLE, NodeStoreMismatch, migrate, open_store


async def test_migrations_apply_idempotently_and_the_store_is_claimed_once(db_url: str) -> None:
    engine = await open_store(db_url, "wl-a")
    try:
        migrate(db_url)  # a second start
        async with engine.connect() as conn:
            versions = (await conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))).scalars().all()
            owner = (await conn.execute(sa.text("SELECT value FROM node_meta WHERE key = 'wl_id'"))).scalar_one()
        assert "node_core_0001" in versions
        assert owner == "wl-a"
    finally:
        await engine.dispose()
    again = await open_store(db_url, "wl-a")
    await again.dispose()
    with pytest.raises(NodeStoreMismatch, match="belongs to WL 'wl-a'"):
        await open_store(db_url, "wl-b")
