"""The store used directly: an incremental world load equals a full one after every kind of change."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.app import MIGRATIONS_DIR, VERSION_TABLE
from cp_server.audit.checkpoint import read_head
from cp_server.audit.log import AuditLog
from cp_server.rollout.flags import FeatureFlags
from cp_server.rollout.stages import Rollouts
from cp_server.settings import CpSettings
from cp_server.store.changes import ChangeRunner, Committed, Tx
from cp_server.store.pairs import PairPolicies
from cp_server.store.records import Status, World
from cp_server.store.registry import WlRegistry
from cp_server.store.trust_tables import revoked_certificates, token_keys
from cp_server.store.world import load_world
from tests.support.pki import PkiFixture
from xporty.cp.v1 import rollout_pb2, rollout_service_pb2
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


async def _insert_revoked(tx: Tx, serial: str, not_after: dt.datetime) -> None:
    await tx.conn.execute(revoked_certificates.insert().values(
        serial=serial, wl_id="wl-a", not_after=not_after, revoke_time=tx.now, reason="test", actor=ACTOR,
        changed_version=tx.version))
    await tx.audit("certificate.revoke", "wl/wl-a", None, {"serials": [serial]})


async def _put_key(tx: Tx, kid: str, retire_at: dt.datetime | None, dropped_at: dt.datetime | None = None) -> None:
    values = {"kid": kid, "public_key_pem": f"pem-{kid}", "created_at": tx.now, "retire_at": retire_at,
              "dropped_at": dropped_at, "changed_version": tx.version}
    found = (await tx.conn.execute(sa.select(token_keys.c.kid).where(token_keys.c.kid == kid))).first()
    if found is None:
        await tx.conn.execute(token_keys.insert().values(values))
    else:
        await tx.conn.execute(token_keys.update().where(token_keys.c.kid == kid).values(values))
    await tx.audit("token_key.rotate", "token_keys", None, {"kid": kid})


async def test_incremental_load_of_trust_and_rollout_sections(engine: AsyncEngine, pki: PkiFixture) -> None:
    """Revocations, token keys, flags and rollouts: the incremental load equals a full one after each change,
    keeps the section objects no change touched, and carries the audit head of its snapshot."""
    clock = SystemClock()
    changes = ChangeRunner(engine, AuditLog(pki.dir.load_ca().key, clock), clock, notify_channel="t")
    registry = WlRegistry(changes)
    pairs = PairPolicies(changes, CpSettings(db_url="", pki_dir=pki.dir.root))
    flags = FeatureFlags(changes)
    rollouts = Rollouts(changes)
    later = NOW + dt.timedelta(days=1)

    def flag(name: str, enabled: bool) -> rollout_pb2.FeatureFlag:
        expire = timestamp_pb2.Timestamp()
        expire.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
        return rollout_pb2.FeatureFlag(wl_id="wl-a", name=name, kind=rollout_pb2.FEATURE_FLAG_KIND_BOOLEAN,
                                       enabled=enabled, owner="ops", expire_time=expire)

    def run(body: Callable[[Tx], Awaitable[None]]) -> Callable[[], Awaitable[Committed[None]]]:
        return lambda: changes.run("test", ACTOR, body)

    for wl in ("wl-a", "wl-b"):
        await registry.register(ACTOR, wl_id=wl, name=wl, currency=wl, currency_decimals=2, reference_rate="1",
                                trader_endpoint="a:1")
    await pairs.update_pair(ACTOR, wl_x="wl-a", wl_y="wl-b", fx_rate="1", imbalance_limit="9")
    steps: list[tuple[str, Callable[[], Awaitable[Committed[Any]]]]] = [
        ("revoked", run(lambda tx: _insert_revoked(tx, "0a", later))),
        ("revoked", run(lambda tx: _insert_revoked(tx, "0b", NOW + dt.timedelta(hours=1)))),
        ("token_keys", run(lambda tx: _put_key(tx, "k1", None))),
        ("token_keys", run(lambda tx: _put_key(tx, "k2", None))),
        ("token_keys", run(lambda tx: _put_key(tx, "k1", later))),  # k1 retires
        ("token_keys", run(lambda tx: _put_key(tx, "k1", later, dropped_at=NOW))),  # k1 dropped
        ("flags", lambda: flags.set(ACTOR, flag("f1", True), reason="test", force=True, now=dt.datetime.now(dt.UTC))),
        ("flags", lambda: flags.set(ACTOR, flag("f1", False), reason="test", force=True,
                                    now=dt.datetime.now(dt.UTC))),
        ("rollouts", lambda: rollouts.configure(ACTOR, rollout_service_pb2.ConfigureRolloutRequest(
            exporter_wl="wl-a", importer_wl="wl-b", force=True, reason="test"))),
        ("rollouts", lambda: rollouts.promote(ACTOR, "wl-a", "wl-b", "test")),
        ("white_labels", lambda: registry.update(ACTOR, wl_id="wl-b", name="B2")),
    ]
    sections = ("white_labels", "pairs", "revoked", "token_keys", "flags", "rollouts")
    world = await load_world(engine, NOW)
    for touched, step in steps:
        done = await step()
        incremental = await load_world(engine, NOW, world)
        full = await load_world(engine, NOW)
        assert incremental.version == full.version == done.version
        assert _same(incremental, full)
        async with engine.connect() as conn:
            assert incremental.audit_head == await read_head(conn)
        for name in sections:
            kept = getattr(incremental, name) is getattr(world, name)
            assert kept == (name != touched), name
        world = incremental
    assert set(world.revoked) == {"0a", "0b"}
    assert [k.kid for k in world.token_keys] == ["k2"]
    assert not world.flags[("wl-a", "f1")].enabled
    assert world.rollouts[("wl-a", "wl-b")].stage.value == "EXPANSION"
    # A revocation leaves the world once its certificate expired, without any change.
    two_hours = NOW + dt.timedelta(hours=2)
    expired = await load_world(engine, two_hours, dataclasses.replace(world, version=world.version - 1))
    assert set(expired.revoked) == {"0a"}
    assert set((await load_world(engine, two_hours)).revoked) == {"0a"}
