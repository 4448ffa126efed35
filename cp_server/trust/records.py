"""What the trust tables' rows mean, and reading them into the policy world (one consistent snapshot)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import revoked_certificates, token_keys


@dataclass(frozen=True)
class RevokedRecord:
    """One revoked certificate."""

    serial: str
    wl_id: str
    not_after: dt.datetime
    revoke_time: dt.datetime
    reason: str


@dataclass(frozen=True)
class TokenKeyRecord:
    """One published JWT verification key; ``retire_at`` is None for the key that signs now."""

    kid: str
    public_key_pem: str
    created_at: dt.datetime
    retire_at: dt.datetime | None


_REVOKED = sa.select(
    revoked_certificates.c.serial, revoked_certificates.c.wl_id, revoked_certificates.c.not_after,
    revoked_certificates.c.revoke_time, revoked_certificates.c.reason,
).where(revoked_certificates.c.not_after > sa.bindparam("now"))
_KEYS = sa.select(
    token_keys.c.kid, token_keys.c.public_key_pem, token_keys.c.created_at, token_keys.c.retire_at,
).where(token_keys.c.dropped_at.is_(None))


async def load_trust(
    conn: AsyncConnection, now: dt.datetime
) -> tuple[Mapping[str, RevokedRecord], tuple[TokenKeyRecord, ...]]:
    """Unexpired revocations by serial, and the published token keys (current first), in the caller's snapshot.

    Both tables stay small (a revocation lives no longer than its certificate, ≤ a day by default; keys drop out
    after one token lifetime), so they are read whole on every world load.
    """
    revoked = {row.serial: RevokedRecord(**row._mapping) for row in await conn.execute(_REVOKED, {"now": now})}
    found = [TokenKeyRecord(**row._mapping) for row in await conn.execute(_KEYS)]
    # The signing key first (no retire time), then the retiring ones, latest retirement first.
    found.sort(key=lambda k: (k.retire_at is not None, -(k.retire_at.timestamp() if k.retire_at else 0.0), k.kid))
    keys = tuple(found)
    return revoked, keys
