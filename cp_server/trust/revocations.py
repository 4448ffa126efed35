"""Revoking WL node certificates: one versioned, audited change, so every policy view and replica follows.

A revocation is a policy change (``ChangeRunner``): it bumps the policy version, writes the rows and the audit
record in one transaction and, on PostgreSQL, notifies the other replicas. When the RPC answers, this replica's
world already holds the revocation, so the CP's peer guard refuses the certificate from the next RPC on; the
nodes get it with the next policy view.
"""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.identity.tables import issued_certificates
from cp_server.store import validation
from cp_server.store.changes import ChangeRunner, Committed, Tx
from cp_server.store.trust_records import RevokedRecord
from cp_server.store.trust_tables import revoked_certificates
from xwl_runtime.errors import InvalidArgument, NotFound

SERIAL_RE = re.compile(r"^[0-9a-f]{1,40}$")
MAX_REASON_CHARS = 200
NOT_FOUND_REASON = "CERTIFICATE_NOT_FOUND"

# Built once (statement objects memoize their cache key); values are bound per call.
_C = issued_certificates.c
_BY_SERIAL = sa.select(_C.serial, _C.wl_id, _C.not_after).where(
    _C.serial == sa.bindparam("serial"), _C.not_after > sa.bindparam("now"))
_BY_WL = sa.select(_C.serial, _C.wl_id, _C.not_after).where(
    _C.wl_id == sa.bindparam("wl_id"), _C.not_after > sa.bindparam("now")).order_by(_C.serial)
_ALREADY = sa.select(revoked_certificates.c.serial).where(
    revoked_certificates.c.serial.in_(sa.bindparam("serials", expanding=True)))
_INSERT = revoked_certificates.insert()


def serial(field: str, value: str) -> str:
    """A certificate serial as the CP records it: lower-case hex, at most 40 digits, no leading zeros."""
    value = value.strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    value = value.lstrip("0") or "0"
    if not SERIAL_RE.match(value):
        raise InvalidArgument.field(field, "hexadecimal serial, at most 40 digits")
    return value


class Revocations:
    """Revoke recorded certificates; list the revocations still in force."""

    def __init__(self, changes: ChangeRunner) -> None:
        self._changes = changes

    @property
    def engine(self) -> AsyncEngine:
        return self._changes.engine

    async def revoke(
        self, actor: str, *, serial_hex: str = "", wl_id: str = "", reason: str = ""
    ) -> Committed[list[RevokedRecord]]:
        """Revoke one certificate (``serial_hex``) or every unexpired one of ``wl_id``; exactly one is given.

        NOT_FOUND (``CERTIFICATE_NOT_FOUND``) when nothing recorded and unexpired matches. Certificates already
        revoked are skipped; when nothing new is revoked the change rolls back (no version, no audit).
        """
        if bool(serial_hex) == bool(wl_id):
            raise InvalidArgument.field("serial", "give exactly one of serial or wl_id")
        wanted = serial("serial", serial_hex) if serial_hex else None
        wl = validation.wl_id("wl_id", wl_id) if wl_id else None
        why = validation.text("reason", reason, max_chars=MAX_REASON_CHARS, required=False)

        async def body(tx: Tx) -> list[RevokedRecord]:
            if wanted is not None:
                found = (await tx.conn.execute(_BY_SERIAL, {"serial": wanted, "now": tx.now})).all()
            else:
                found = (await tx.conn.execute(_BY_WL, {"wl_id": wl, "now": tx.now})).all()
            if not found:
                what = f"serial {wanted}" if wanted is not None else f"WL {wl}"
                raise NotFound(f"no unexpired recorded certificate for {what}", reason=NOT_FOUND_REASON)
            already = set((await tx.conn.execute(_ALREADY, {"serials": [row.serial for row in found]})).scalars())
            revoked = [
                RevokedRecord(serial=row.serial, wl_id=row.wl_id, not_after=row.not_after, revoke_time=tx.now,
                              reason=why)
                for row in found if row.serial not in already
            ]
            if revoked:
                await tx.conn.execute(_INSERT, [
                    {"serial": rec.serial, "wl_id": rec.wl_id, "not_after": rec.not_after,
                     "revoke_time": rec.revoke_time, "reason": rec.reason, "actor": tx.actor[:300],
                     "changed_version": tx.version}
                    for rec in revoked
                ])
            for subject_wl in sorted({rec.wl_id for rec in revoked}):
                await tx.audit("certificate.revoke", f"wl/{subject_wl}", None, {
                    "serials": [rec.serial for rec in revoked if rec.wl_id == subject_wl], "reason": why,
                })
            return revoked

        return await self._changes.run("certificate.revoke", actor, body)

    async def list(self, now: dt.datetime, *, wl_id: str = "") -> list[RevokedRecord]:
        """Revocations whose certificate has not expired at ``now``, newest first (``wl_id``: only that WL's)."""
        r = revoked_certificates.c
        query = sa.select(r.serial, r.wl_id, r.not_after, r.revoke_time, r.reason).where(r.not_after > now)
        if wl_id:
            query = query.where(r.wl_id == validation.wl_id("wl_id", wl_id))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(r.revoke_time.desc(), r.serial))).all()
        return [RevokedRecord(**row._mapping) for row in rows]
