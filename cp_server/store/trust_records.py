"""What the trust tables' rows mean, and reading them into the policy world (one consistent snapshot)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .trust_tables import revoked_certificates, token_keys


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
).where(
    revoked_certificates.c.changed_version > sa.bindparam("since"),
    revoked_certificates.c.not_after > sa.bindparam("now"),
)
_KEYS = sa.select(
    token_keys.c.kid, token_keys.c.public_key_pem, token_keys.c.created_at, token_keys.c.retire_at,
    token_keys.c.dropped_at,
).where(token_keys.c.changed_version > sa.bindparam("since"))


def unexpired(revoked: Mapping[str, RevokedRecord], now: dt.datetime) -> Mapping[str, RevokedRecord]:
    """``revoked`` without the entries whose certificate expired by ``now`` (the same mapping if none did)."""
    if all(r.not_after > now for r in revoked.values()):
        return revoked
    return {serial: r for serial, r in revoked.items() if r.not_after > now}


async def load_revoked(
    conn: AsyncConnection, now: dt.datetime, since: int, base: Mapping[str, RevokedRecord],
) -> Mapping[str, RevokedRecord]:
    """Unexpired revocations by serial, in the caller's snapshot: rows changed after ``since`` overlaid on
    ``base`` (every row when ``since`` is -1). Rows are never deleted; an entry leaves once its certificate
    expired (``unexpired``)."""
    found = {row.serial: RevokedRecord(**row._mapping)
             for row in await conn.execute(_REVOKED, {"since": since, "now": now})}
    kept = unexpired(base, now)
    return {**kept, **found} if found else kept


async def load_token_keys(
    conn: AsyncConnection, since: int, base: tuple[TokenKeyRecord, ...],
) -> tuple[TokenKeyRecord, ...]:
    """The published token keys (current first), in the caller's snapshot: rows changed after ``since`` (a
    dropped key among them leaves) overlaid on ``base`` (every row when ``since`` is -1)."""
    rows = list(await conn.execute(_KEYS, {"since": since}))
    if not rows:
        return base
    by_kid = {k.kid: k for k in base}
    for row in rows:
        values = dict(row._mapping)
        if values.pop("dropped_at") is not None:
            by_kid.pop(values["kid"], None)
        else:
            by_kid[values["kid"]] = TokenKeyRecord(**values)
    found = list(by_kid.values())
    # The signing key first (no retire time), then the retiring ones, latest retirement first.
    found.sort(key=lambda k: (k.retire_at is not None, -(k.retire_at.timestamp() if k.retire_at else 0.0), k.kid))
    return tuple(found)


_IS_REVOKED = sa.select(revoked_certificates.c.serial).where(revoked_certificates.c.serial == sa.bindparam("serial"))


async def is_revoked(conn: AsyncConnection, serial_hex: str) -> bool:
    """Whether ``serial_hex`` is revoked, read in the caller's transaction.

    A renewal checks its caller's certificate with this after taking the audit lock, so a revocation committed
    while the renewal was in flight cannot be outrun by the fresh certificate.
    """
    return (await conn.execute(_IS_REVOKED, {"serial": serial_hex})).first() is not None
