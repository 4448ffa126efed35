"""Loading the policy world in one consistent read: the input of every WL's view at one version.

A full load reads every row; an incremental load (``base`` given) reads only rows whose ``changed_version`` is
newer than ``base.version`` and overlays them. That is exact because rows are never deleted and every change
stamps the rows it touches with its version (a direction change also stamps its pair; a dropped token key is
stamped, not deleted). Revocations also leave by time: an entry whose certificate expired is dropped from the base.

An incremental load starts with one probe statement: the stored version, the audit head, and for each table
whether it holds a row newer than the base. Only the tables that do are read, and the sections of the world that
did not change keep their objects (the view builder caches their proto form by identity). A policy change thus
costs two statements (the probe and the table it touched), whatever the number of sections a view carries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .records import DirectionRecord, PairRecord, WlRecord, World, ordered
from .rollout_records import load_flags, load_rollouts
from .rollout_tables import directions as rollout_directions
from .rollout_tables import flags as rollout_flags
from .schema import CP_STATE_ID, cp_state, directions, pairs, white_labels
from .trust_records import load_revoked, load_token_keys, unexpired
from .trust_tables import revoked_certificates, token_keys

# Built once (statement objects memoize their cache key); ``since`` is bound per load.
_SINCE = sa.bindparam("since", type_=sa.BigInteger())
_SECTIONS = {
    "wls": white_labels, "pairs": pairs, "directions": directions, "revoked": revoked_certificates,
    "token_keys": token_keys, "flags": rollout_flags, "rollouts": rollout_directions,
}
_PROBE = sa.select(
    cp_state.c.policy_version, cp_state.c.audit_seq, cp_state.c.audit_head,
    *(sa.exists().where(table.c.changed_version > _SINCE).label(name) for name, table in _SECTIONS.items()),
).where(cp_state.c.id == CP_STATE_ID)
_WLS = sa.select(white_labels).where(white_labels.c.changed_version > _SINCE)
_PAIRS = sa.select(pairs).where(pairs.c.changed_version > _SINCE)
_DIRECTIONS = sa.select(directions).where(directions.c.changed_version > _SINCE)


async def load_world(engine: AsyncEngine, now: dt.datetime, base: World | None = None) -> World:
    """Every WL, pair and direction as of one version (rows newer than ``base.version`` overlaid on ``base``),
    with the audit head of the same snapshot; ``base`` itself when nothing newer is stored.

    PostgreSQL: REPEATABLE READ, so the statements share one snapshot and the version read first matches the
    rows read after it. SQLite: one transaction (the engine begins IMMEDIATE, which excludes writers).
    """
    async with engine.connect() as raw:
        conn = raw
        if raw.dialect.name == "postgresql":
            conn = await raw.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            return await _load(conn, now, base if base is not None else _empty(now))


def _empty(now: dt.datetime) -> World:
    """The base of a full load: older than every row, so the probe finds every table that has rows."""
    return World(version=-1, loaded_at=now, white_labels={}, pairs={})


async def _load(conn: AsyncConnection, now: dt.datetime, base: World) -> World:
    params = {"since": base.version}
    state = (await conn.execute(_PROBE, params)).one()
    if int(state.policy_version) <= base.version:
        return base
    newer = state._mapping
    wl_rows = (await conn.execute(_WLS, params)).mappings().all() if newer["wls"] else []
    pair_rows = (await conn.execute(_PAIRS, params)).mappings().all() if newer["pairs"] else []
    dir_rows = (await conn.execute(_DIRECTIONS, params)).mappings().all() if newer["directions"] else []
    wls: Mapping[str, WlRecord] = base.white_labels
    if wl_rows:
        wls = {**base.white_labels, **{row["wl_id"]: WlRecord.from_row(row) for row in wl_rows}}
    pair_map: Mapping[tuple[str, str], PairRecord] = base.pairs
    partners: Mapping[str, tuple[str, ...]] = base.partners
    if pair_rows:  # a changed direction always comes with its pair's row
        pair_map, partners = _overlay_pairs(base, pair_rows, dir_rows)
    return World(
        version=int(state.policy_version),
        loaded_at=now,
        white_labels=wls,
        pairs=pair_map,
        partners=partners,
        revoked=(await load_revoked(conn, now, base.version, base.revoked) if newer["revoked"]
                 else unexpired(base.revoked, now)),
        token_keys=await load_token_keys(conn, base.version, base.token_keys) if newer["token_keys"]
        else base.token_keys,
        flags=await load_flags(conn, base.version, base.flags) if newer["flags"] else base.flags,
        rollouts=await load_rollouts(conn, base.version, base.rollouts) if newer["rollouts"] else base.rollouts,
        audit_head=(int(state.audit_seq), str(state.audit_head)),
    )


def _overlay_pairs(
    base: World, pair_rows: Sequence[RowMapping], dir_rows: Sequence[RowMapping]
) -> tuple[dict[tuple[str, str], PairRecord], dict[str, tuple[str, ...]]]:
    """The pairs of ``base`` with the changed rows overlaid (a changed direction comes with its pair's row), and
    each WL's sorted partners."""
    pair_map = dict(base.pairs)
    partners = {wl: set(others) for wl, others in base.partners.items()}
    new_dirs = {(row["exporter"], row["importer"]): DirectionRecord.from_row(row) for row in dir_rows}
    for row in pair_rows:
        a, b = row["wl_a"], row["wl_b"]
        old = pair_map.get((a, b))
        old_dirs = {(d.exporter, d.importer): d for d in (old.directions if old is not None else ())}
        found = tuple(
            d for d in (new_dirs.get((a, b)) or old_dirs.get((a, b)), new_dirs.get((b, a)) or old_dirs.get((b, a)))
            if d is not None
        )
        pair_map[ordered(a, b)] = PairRecord.from_row(row, found)
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    return pair_map, {wl: tuple(sorted(others)) for wl, others in partners.items()}
