"""The change hub: nothing served before the first full load, one load per burst of changes, readiness gates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cp_server.app import MIGRATIONS_DIR, VERSION_TABLE
from cp_server.policy.hub import PolicyHub
from tests.support.databases import sqlite_url
from xwl_runtime import db
from xwl_runtime.clock import SystemClock
from xwl_runtime.errors import Unavailable


async def test_not_ready_until_the_first_full_load_succeeds(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    engine = db.create_engine(url)  # no tables yet: every load fails
    hub = PolicyHub(engine, SystemClock(), [], resync_interval_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        await asyncio.sleep(0.3)
        assert not hub.ready.is_set() and hub.version == 0
        with pytest.raises(Unavailable):
            hub.view("wl-a")
        with pytest.raises(Unavailable):
            hub.world()
        await asyncio.to_thread(db.upgrade, url, MIGRATIONS_DIR, version_table=VERSION_TABLE)
        await asyncio.wait_for(hub.ready.wait(), timeout=10)
        assert hub.world().version == 0 and hub.view("wl-a") is None
    finally:
        stop.set()
        await task
        await engine.dispose()


async def test_a_burst_of_marks_loads_once_and_wakes_waiters(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await asyncio.to_thread(db.upgrade, url, MIGRATIONS_DIR, version_table=VERSION_TABLE)
    engine = db.create_engine(url)
    hub = PolicyHub(engine, SystemClock(), [], resync_interval_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        await asyncio.wait_for(hub.ready.wait(), timeout=10)
        loads = hub.loads
        for _ in range(20):
            hub.mark_dirty(0)  # already installed: ignored
        await asyncio.sleep(0.1)
        assert hub.loads == loads
        async with engine.begin() as conn:
            from cp_server.store.versions import bump_version

            version = await bump_version(conn, now=SystemClock().now(), action="test")
        waiter = asyncio.create_task(hub.wait_for_change(0, timeout=5))
        for _ in range(20):
            hub.mark_dirty(version)
        await asyncio.wait_for(hub.catch_up(version), timeout=5)
        await asyncio.wait_for(waiter, timeout=1)
        assert hub.version == version
        assert hub.loads == loads + 1
    finally:
        stop.set()
        await task
        await engine.dispose()
