"""Feature flags per WL: set (a versioned, audited policy change), list, and the history from the audit log.

A flag is named per WL and carries its kind (boolean, or a percentage of subjects), its value, a default (read
after its expiry and by anything that does not know the flag), an owner and an expiry date. Setting one is a
policy change (``ChangeRunner``), so the WL's node receives it in its next view, at the version the change
answered with. The WL's node must have reported the ``feature_flags`` capability unless the change is forced.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.store import validation
from cp_server.store.changes import ChangeRunner, Committed, Tx
from cp_server.store.registry import require_known
from cp_server.store.rollout_records import KIND_FROM_PROTO, FlagRecord
from cp_server.store.rollout_tables import flags
from cp_server.store.schema import audit_log
from xporty.cp.v1 import rollout_pb2
from xwl_runtime.errors import InvalidArgument, NotFound
from xwl_runtime.text import bounded

from . import capabilities

NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
MAX_OWNER_CHARS = 200
MAX_DESCRIPTION_CHARS = 500
MAX_FLAG_LIFETIME = dt.timedelta(days=366)
"""Flags are temporary by design: an expiry at most a year ahead keeps them from becoming configuration."""
ACTION = "feature_flag.set"
FORCED_ACTION = "feature_flag.force_set"


def flag_name(field: str, value: str) -> str:
    bounded(field, value, max_chars=63)
    if not NAME_RE.match(value):
        raise InvalidArgument.field(field, "lower-case letters, digits, '.', '_' or '-', starting with a letter")
    return value


def subject(wl_id: str, name: str) -> str:
    return f"flag/{wl_id}/{name}"


class FeatureFlags:
    """The flag store behind RolloutService's flag RPCs."""

    def __init__(self, changes: ChangeRunner) -> None:
        self._changes = changes

    @property
    def engine(self) -> AsyncEngine:
        return self._changes.engine

    async def set(self, actor: str, flag: rollout_pb2.FeatureFlag, *, reason: str = "", force: bool = False,
                  now: dt.datetime) -> Committed[FlagRecord]:
        """Create or replace a flag; INVALID_ARGUMENT naming the field, FEATURE_NOT_SUPPORTED (unless forced)."""
        wl_id = validation.wl_id("flag.wl_id", flag.wl_id)
        name = flag_name("flag.name", flag.name)
        kind = KIND_FROM_PROTO.get(flag.kind)
        if kind is None:
            raise InvalidArgument.field("flag.kind", "BOOLEAN or PERCENTAGE")
        if kind == "PERCENTAGE" and not 0 <= flag.percent_basis_points <= 10_000:
            raise InvalidArgument.field("flag.percent_basis_points", "0..10000")
        if kind == "BOOLEAN" and flag.percent_basis_points:
            raise InvalidArgument.field("flag.percent_basis_points", "only for PERCENTAGE flags")
        owner = validation.text("flag.owner", flag.owner, max_chars=MAX_OWNER_CHARS)
        description = validation.text("flag.description", flag.description, max_chars=MAX_DESCRIPTION_CHARS,
                                      required=False)
        if not flag.HasField("expire_time"):
            raise InvalidArgument.field("flag.expire_time", "required: every flag has an expiry date")
        expire = flag.expire_time.ToDatetime(tzinfo=dt.UTC)
        if expire <= now or expire > now + MAX_FLAG_LIFETIME:
            raise InvalidArgument.field("flag.expire_time", "must be in the future, at most 366 days ahead")
        why = validation.reason("reason", reason)

        async def body(tx: Tx) -> FlagRecord:
            await require_known(tx.conn, "flag.wl_id", wl_id)
            if not force:
                await capabilities.require(tx.conn, wl_id, capabilities.FEATURE_FLAGS)
            key = (flags.c.wl_id == wl_id) & (flags.c.name == name)
            row = (await tx.conn.execute(sa.select(flags).where(key))).mappings().first()
            before = FlagRecord.from_row(row) if row is not None else None
            record = FlagRecord(wl_id=wl_id, name=name, kind=kind, enabled=flag.enabled if kind == "BOOLEAN" else False,
                                percent_bp=flag.percent_basis_points, default_enabled=flag.default_enabled,
                                owner=owner, expire_time=expire, description=description,
                                changed_version=tx.version)
            if before is not None and before.audit_state() == record.audit_state():
                return before  # nothing changes: the transaction rolls back
            values = record.__dict__.copy()
            if before is None:
                await tx.conn.execute(flags.insert().values(values))
            else:
                await tx.conn.execute(flags.update().where(key).values(values))
            after = {**record.audit_state(), "reason": why}
            if force:
                after["forced"] = True
            await tx.audit(FORCED_ACTION if force else ACTION, subject(wl_id, name),
                           before.audit_state() if before is not None else None, after)
            return record

        return await self._changes.run(ACTION, actor, body)

    async def list(self, wl_id: str = "") -> list[FlagRecord]:
        query = sa.select(flags).order_by(flags.c.wl_id, flags.c.name)
        if wl_id:
            query = query.where(flags.c.wl_id == validation.wl_id("wl_id", wl_id))
        async with self.engine.connect() as conn:
            return [FlagRecord.from_row(r) for r in (await conn.execute(query)).mappings()]

    async def history(self, wl_id: str, name: str) -> Sequence[sa.RowMapping]:
        """The flag's audit records, oldest first; NOT_FOUND ``FLAG_NOT_FOUND`` when it never existed."""
        validation.wl_id("wl_id", wl_id)
        flag_name("name", name)
        query = (sa.select(audit_log).where(audit_log.c.subject == subject(wl_id, name),
                                           audit_log.c.action.in_((ACTION, FORCED_ACTION)))
                 .order_by(audit_log.c.seq).limit(1000))
        async with self.engine.connect() as conn:
            found = (await conn.execute(query)).mappings().all()
        if not found:
            raise NotFound(f"{wl_id} has no flag {name}", reason="FLAG_NOT_FOUND",
                           metadata={"wl_id": wl_id, "name": name})
        return found
