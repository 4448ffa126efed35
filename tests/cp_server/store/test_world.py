"""The store used directly: an incremental world load equals a full one after every kind of change."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.app import MIGRATIONS_DIR, VERSION_TABLE
from cp_server.audit.log import AuditLog
from cp_server.settings import CpSettings
from cp_server.store.changes import ChangeRunner
from cp_server.store.pairs import PairPolicies
from cp_server.store.records import Status, World
from cp_server.store.registry import WlRegistry
from cp_server.store.world import load_world
from tests.support.pki import PkiFixture
from xwl_runtime import db
from xwl_runtime.clock import SystemClock

ACTOR = "spiffe://xporty/ops/test"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(db.upgrade, db_url, MIGRATIONS_DIR, version_table=VERSION_TABLE)
    eng = db.create_engine(db_url)
    yield eng
    await eng.dispose()


def _same(a: World, b: World) -> bool:
    return dataclasses.replace(a, loaded_at=NOW) == dataclasses.replace(b, loaded_at=NOW)


async def test_incremental_load_matches_full_load(engine: AsyncEngine, pki: PkiFixture) -> None:
    clock = SystemClock()
    changes = ChangeRunner(engine, AuditLog(pki.dir.load_ca().key, clock), clock, notify_channel="t")
    registry = WlRegistry(changes)
    pairs = PairPolicies(changes, CpSettings(db_url="", pki_dir=pki.dir.root))
    steps = [
        lambda: registry.register(ACTOR, wl_id="wl-a", name="A", currency="A", currency_decimals=2,
                                  reference_rate="1", trader_endpoint="a:1"),
        lambda: registry.register(ACTOR, wl_id="wl-b", name="B", currency="B", currency_decimals=0,
                                  reference_rate="3", trader_endpoint="b:1"),
        lambda: registry.register(ACTOR, wl_id="wl-c", name="C", currency="C", currency_decimals=8,
                                  reference_rate="0.5", trader_endpoint="[::1]:7"),
        lambda: pairs.update_direction(ACTOR, exporter="wl-b", importer="wl-a", import_enabled=True),
        lambda: pairs.update_pair(ACTOR, wl_x="wl-c", wl_y="wl-a", fx_rate="2", imbalance_limit="9"),
        lambda: pairs.update_direction(ACTOR, exporter="wl-a", importer="wl-c", export_delay=(60, 0)),
        lambda: registry.update(ACTOR, wl_id="wl-a", name="A2"),
        lambda: pairs.update_pair(ACTOR, wl_x="wl-a", wl_y="wl-b", status=Status.PAUSED, fx_rate="0.34"),
        lambda: pairs.update_direction(ACTOR, exporter="wl-a", importer="wl-b", destination_visible=True),
    ]
    world = await load_world(engine, NOW)
    assert world.version == 0 and not world.white_labels
    for step in steps:
        done = await step()
        incremental = await load_world(engine, NOW, world)
        full = await load_world(engine, NOW)
        assert incremental.version == full.version == done.version
        assert _same(incremental, full)
        world = incremental
    assert world.partners == {"wl-a": ("wl-b", "wl-c"), "wl-b": ("wl-a",), "wl-c": ("wl-a",)}
    ab = world.pairs[("wl-a", "wl-b")]
    assert ab.status is Status.PAUSED and str(ab.fx_rate) == "0.34" and ab.fx_version == 2
    assert [(d.exporter, d.import_enabled, d.destination_visible) for d in ab.directions] == [
        ("wl-a", False, True), ("wl-b", True, False)]
    assert await load_world(engine, NOW, world) is world  # nothing newer: the base is reused
