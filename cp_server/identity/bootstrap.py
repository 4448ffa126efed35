"""One-time bootstrap tokens: how a WL node proves, once, that an operator let it enroll.

A token is 32 random bytes (URL-safe base64). Only its sha256 is stored, so a database leak does not leak
usable tokens. Consumption is one conditional UPDATE … RETURNING: the row is claimed only if it is unused and
unexpired, so of two concurrent uses exactly one succeeds (PostgreSQL re-checks the WHERE clause after the row
lock; SQLite serializes writers with BEGIN IMMEDIATE). Unknown, used and expired tokens are refused with the
same status, reason and message, so a caller cannot tell them apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from xwl_runtime.clock import Clock
from xwl_runtime.errors import InvalidArgument, Unauthenticated
from xwl_runtime.identity import Identity

from .tables import bootstrap_tokens

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
TOKEN_PREFIX = "xbt_"
"""Bootstrap tokens read ``xbt_<43 URL-safe characters>``: recognisable to secret scanners, and never starting with
``-`` (a bare URL-safe token does 1 time in 64, and a command line would then read it as an option)."""
MAX_TTL = dt.timedelta(days=30)
INVALID_REASON = "BOOTSTRAP_TOKEN_INVALID"
_MAX_TOKEN_CHARS = 256


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _invalid() -> Unauthenticated:
    # One message for every case: unknown, used and expired must be indistinguishable.
    return Unauthenticated("bootstrap token is not valid", reason=INVALID_REASON)


class BootstrapTokens:
    """Creates and consumes bootstrap tokens."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def create(self, wl_id: str, ttl: dt.timedelta) -> tuple[str, dt.datetime]:
        """A new token for ``wl_id`` valid for ``ttl``; returns (token, expiry). The token is shown only once."""
        try:
            Identity.wl(wl_id)
        except ValueError as err:
            raise InvalidArgument.field("wl_id", str(err)) from err
        if ttl <= dt.timedelta(0) or ttl > MAX_TTL:
            raise InvalidArgument.field("ttl", f"must be positive and at most {MAX_TTL}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock.now()
        expires_at = now + ttl
        async with self._engine.begin() as conn:
            await conn.execute(
                bootstrap_tokens.insert().values(
                    token_sha256=token_hash(token), wl_id=wl_id, created_at=now, expires_at=expires_at,
                    used_at=None,
                )
            )
        log.info("bootstrap token created", extra={"fields": {"wl_id": wl_id, "expires_at": expires_at.isoformat()}})
        return token, expires_at

    async def consume(self, token: str) -> str:
        """Spend ``token`` in its own transaction; returns the WL it was created for."""
        async with self._engine.begin() as conn:
            return await self.consume_in(conn, token)

    async def consume_in(self, conn: AsyncConnection, token: str) -> str:
        """Spend ``token`` inside the caller's transaction (rolled back with it, e.g. if signing fails)."""
        if not token or len(token) > _MAX_TOKEN_CHARS:
            raise _invalid()
        now = self._clock.now()
        t = bootstrap_tokens
        row = (
            await conn.execute(
                t.update()
                .where(t.c.token_sha256 == token_hash(token), t.c.used_at.is_(None), t.c.expires_at > now)
                .values(used_at=now)
                .returning(t.c.wl_id)
            )
        ).first()
        if row is None:
            raise _invalid()
        return str(row.wl_id)
