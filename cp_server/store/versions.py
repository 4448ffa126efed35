"""The policy version counter: one row in ``cp_state``, bumped at the start of every change transaction.

``UPDATE cp_state SET policy_version = policy_version + 1 … RETURNING`` takes the row lock, so change
transactions of every CP replica run one at a time and commit in version order: versions are gapless (a rolled-back
change returns its number), monotonic across restarts and replicas, and a reader that sees version V sees every
row written up to V.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import CP_STATE_ID, cp_state, policy_versions

# Built once: statement objects memoize their cache key, so executing them skips both building and keying.
_BUMP = (
    cp_state.update()
    .where(cp_state.c.id == CP_STATE_ID)
    .values(policy_version=cp_state.c.policy_version + 1)
    .returning(cp_state.c.policy_version)
)
_RECORD = policy_versions.insert()
_CURRENT = sa.select(cp_state.c.policy_version).where(cp_state.c.id == CP_STATE_ID)


async def bump_version(conn: AsyncConnection, *, now: dt.datetime, action: str) -> int:
    """Take the next version inside the caller's transaction (and with it the change lock)."""
    version = int((await conn.execute(_BUMP)).scalar_one())
    await conn.execute(_RECORD, {"version": version, "committed_at": now, "action": action[:64]})
    return version


async def current_version(conn: AsyncConnection) -> int:
    return int((await conn.execute(_CURRENT)).scalar_one())


async def first_commit_after(conn: AsyncConnection, version: int) -> dt.datetime | None:
    """When the oldest version newer than ``version`` was committed (None if there is none)."""
    row = (
        await conn.execute(
            sa.select(policy_versions.c.committed_at)
            .where(policy_versions.c.version > version)
            .order_by(policy_versions.c.version)
            .limit(1)
        )
    ).first()
    return row.committed_at if row is not None else None
