"""Loading the policy world in one consistent read: the input of every WL's view at one version.

A full load reads every row; an incremental load (``base`` given) reads only rows whose ``changed_version`` is
newer than ``base.version`` and overlays them. That is exact because rows are never deleted and every change
stamps the rows it touches with its version (a direction change also stamps its pair).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.rollout.records import load_rollout
from cp_server.trust.records import load_trust

from .records import DirectionRecord, PairRecord, WlRecord, World, ordered
from .schema import CP_STATE_ID, cp_state, directions, pairs, white_labels

# Built once (statement objects memoize their cache key); ``since`` is bound per load.
_VERSION = sa.select(cp_state.c.policy_version).where(cp_state.c.id == CP_STATE_ID)
_WLS = sa.select(white_labels).where(white_labels.c.changed_version > sa.bindparam("since"))
_PAIRS = sa.select(pairs).where(pairs.c.changed_version > sa.bindparam("since"))
_DIRECTIONS = sa.select(directions).where(directions.c.changed_version > sa.bindparam("since"))


async def load_world(engine: AsyncEngine, now: dt.datetime, base: World | None = None) -> World:
    """Every WL, pair and direction as of one version (rows newer than ``base.version`` overlaid on ``base``).

    PostgreSQL: REPEATABLE READ, so the statements share one snapshot and the version read first matches the
    rows read after it. SQLite: one transaction (the engine begins IMMEDIATE, which excludes writers).
    """
    since = base.version if base is not None else -1
    async with engine.connect() as raw:
        conn = raw
        if raw.dialect.name == "postgresql":
            conn = await raw.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            version = int((await conn.execute(_VERSION)).scalar_one())
            if base is not None and version <= base.version:
                return base
            params = {"since": since}
            wl_rows = (await conn.execute(_WLS, params)).mappings().all()
            pair_rows = (await conn.execute(_PAIRS, params)).mappings().all()
            dir_rows = (await conn.execute(_DIRECTIONS, params)).mappings().all()
            revoked, token_keys = await load_trust(conn, now)
            flags, rollouts = await load_rollout(conn)
    wls = dict(base.white_labels) if base is not None else {}
    wls.update((row["wl_id"], WlRecord.from_row(row)) for row in wl_rows)
    pair_map = dict(base.pairs) if base is not None else {}
    partners = {wl: set(others) for wl, others in base.partners.items()} if base is not None else {}
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
    return World(
        version=version,
        loaded_at=now,
        white_labels=wls,
        pairs=pair_map,
        partners={wl: tuple(sorted(others)) for wl, others in partners.items()},
        revoked=revoked,
        token_keys=token_keys,
        flags=flags,
        rollouts=rollouts,
    )
