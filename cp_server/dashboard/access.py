"""Who is looking: one-time login links, sessions, and the scope of each identity.

* ``xcwl dashboard login`` calls ``DashboardService/CreateLoginLink`` over mTLS; the CP stores the SHA-256 of a
  random token (never the token) with the caller's identity, its scope and a short expiry (``link_ttl``), audits
  ``dashboard.link``, and answers the link.
* Opening the link redeems it once (``used_at`` set in the same UPDATE that checks it is unused and unexpired, so
  two replicas cannot both accept it) and opens a session: a new random token, stored hashed with its expiry
  (``session_ttl``), audited ``dashboard.session``, given to the browser as an HttpOnly, Secure, SameSite=Strict
  cookie. Logout ends the session.
* Scope: an XporY operator (``spiffe://xporty/ops/<name>``) sees every WL; a WL's identity (its node or one of its
  apps, ``spiffe://xporty/wl/<id>[/app/<name>]``) sees only the pairs of its WL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.audit.log import AuditLog
from cp_server.settings.dashboard import DashboardSettings
from xwl_runtime.clock import Clock
from xwl_runtime.errors import PermissionDenied
from xwl_runtime.identity import Identity, Kind

from .tables import links, sessions

COOKIE = "xcwl_session"
TOKEN_BYTES = 32


@dataclass(frozen=True)
class Principal:
    """A dashboard user: the identity that asked for the link, and the WL it is limited to (None: every WL)."""

    subject: str
    wl: str | None

    def may_see(self, wl_a: str, wl_b: str) -> bool:
        return self.wl is None or self.wl in (wl_a, wl_b)


def scope_of(identity: Identity) -> str | None:
    """None for XporY operators; the WL for a WL's node or app identity."""
    if identity.kind is Kind.OPS:
        return None
    if identity.kind in (Kind.WL, Kind.APP) and identity.wl_id:
        return identity.wl_id
    raise PermissionDenied("only operators and WL identities open the dashboard")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Access:
    """Links and sessions in the CP's store."""

    def __init__(self, engine: AsyncEngine, audit: AuditLog, clock: Clock, settings: DashboardSettings) -> None:
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self._settings = settings

    async def create_link(self, identity: Identity, correlation_id: str) -> tuple[str, dt.datetime]:
        """A one-time token for ``identity`` and its expiry."""
        scope = scope_of(identity)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock.now()
        expires = now + self._settings.link_ttl
        async with self._engine.begin() as conn:
            await conn.execute(links.insert().values(token_sha256=_digest(token), subject=identity.spiffe_id,
                                                     scope_wl=scope, created_at=now, expires_at=expires))
            await self._audit.append(conn, actor=identity.spiffe_id, action="dashboard.link", subject="dashboard",
                                     before=None, after={"scope_wl": scope, "expires_at": expires.isoformat()},
                                     correlation_id=correlation_id)
        return token, expires

    async def redeem(self, token: str) -> tuple[str, Principal] | None:
        """Open a session from a link token (None if unknown, used or expired): (session token, principal)."""
        if not token or len(token) > 128:
            return None
        now = self._clock.now()
        digest = _digest(token)
        async with self._engine.begin() as conn:
            used = await conn.execute(
                links.update().where(links.c.token_sha256 == digest, links.c.used_at.is_(None),
                                     links.c.expires_at > now).values(used_at=now))
            if used.rowcount != 1:
                return None
            row = (await conn.execute(sa.select(links.c.subject, links.c.scope_wl)
                                      .where(links.c.token_sha256 == digest))).one()
            session = secrets.token_urlsafe(TOKEN_BYTES)
            await conn.execute(sessions.insert().values(
                session_sha256=_digest(session), subject=row.subject, scope_wl=row.scope_wl, created_at=now,
                expires_at=now + self._settings.session_ttl))
            await self._audit.append(conn, actor=row.subject, action="dashboard.session", subject="dashboard",
                                     before=None, after={"scope_wl": row.scope_wl},
                                     correlation_id=secrets.token_hex(16))
        return session, Principal(row.subject, row.scope_wl)

    async def principal(self, session: str | None) -> Principal | None:
        """The principal of a live session cookie (None if absent, unknown, ended or expired)."""
        if not session or len(session) > 128:
            return None
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(sessions.c.subject, sessions.c.scope_wl).where(
                sessions.c.session_sha256 == _digest(session), sessions.c.ended_at.is_(None),
                sessions.c.expires_at > self._clock.now()))).first()
        return Principal(row.subject, row.scope_wl) if row else None

    async def logout(self, session: str | None) -> None:
        if not session or len(session) > 128:
            return
        async with self._engine.begin() as conn:
            await conn.execute(sessions.update().where(sessions.c.session_sha256 == _digest(session),
                                                       sessions.c.ended_at.is_(None))
                               .values(ended_at=self._clock.now()))

    async def prune(self, now: dt.datetime) -> None:
        """Forget expired links and sessions."""
        async with self._engine.begin() as conn:
            await conn.execute(links.delete().where(links.c.expires_at < now))
            await conn.execute(sessions.delete().where(sessions.c.expires_at < now))
