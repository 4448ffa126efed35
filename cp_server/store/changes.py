"""Change transactions: the one way state that feeds policy views is modified.

Each change runs in one transaction that (1) bumps the policy version first (taking the change lock, see
``versions``), (2) validates against the stored state and writes, (3) appends an audit record, and (4) on
PostgreSQL queues ``pg_notify(channel, version)``, which PostgreSQL delivers only if and when the transaction
commits. After the commit, local listeners (the policy hub) are awaited with the new version. A body that finds
nothing to change rolls back, so its version number is not consumed and nothing is audited.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from xwl_runtime.clock import Clock

from .versions import bump_version, current_version

log = logging.getLogger(__name__)

T = TypeVar("T")


class AuditLog(Protocol):
    """What a change transaction needs of the audit log (``cp_server.audit.log.AuditLog``)."""

    async def append(
        self, conn: AsyncConnection, *, actor: str, action: str, subject: str,
        before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, correlation_id: str | None = None,
    ) -> int: ...


CommitListener = Callable[[int], Awaitable[None]]


@dataclass
class Tx:
    """A change in progress: its connection, the version it will commit as, and its audit."""

    conn: AsyncConnection
    version: int
    now: dt.datetime
    actor: str
    audit_log: AuditLog
    changed: bool = False
    audit_seqs: list[int] = field(default_factory=list)

    async def audit(
        self, action: str, subject: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
    ) -> None:
        """Record the change (marks the transaction as changing something)."""
        self.changed = True
        seq = await self.audit_log.append(
            self.conn, actor=self.actor, action=action, subject=subject, before=before,
            after={**(after or {}), "version": self.version} if after is not None else None,
        )
        self.audit_seqs.append(seq)


class _NoChange(Exception):
    def __init__(self, result: Any) -> None:
        super().__init__("no change")
        self.result = result


@dataclass(frozen=True)
class Committed(Generic[T]):
    """What a change returns: its result and the policy version current after it."""

    value: T
    version: int
    changed: bool


class ChangeRunner:
    """Runs change bodies in versioned, audited, notifying transactions."""

    def __init__(self, engine: AsyncEngine, audit: AuditLog, clock: Clock, *, notify_channel: str) -> None:
        self.engine = engine
        self._audit = audit
        self._clock = clock
        self._channel = notify_channel
        self._notify = engine.dialect.name == "postgresql"
        self._notify_stmt = sa.select(sa.func.pg_notify(notify_channel, sa.bindparam("payload")))
        self._listeners: list[CommitListener] = []

    def add_commit_listener(self, listener: CommitListener) -> None:
        """``await listener(version)`` runs after every committed change of this process, before the change returns
        (the policy hub uses it so that a change is visible to this replica's readers when its RPC answers)."""
        self._listeners.append(listener)

    async def run(self, action: str, actor: str, body: Callable[[Tx], Awaitable[T]]) -> Committed[T]:
        """Run ``body`` in a change transaction; nothing is stored if it raises."""
        now = self._clock.now()
        try:
            async with self.engine.begin() as conn:
                version = await bump_version(conn, now=now, action=action)
                tx = Tx(conn=conn, version=version, now=now, actor=actor, audit_log=self._audit)
                result = await body(tx)
                if not tx.changed:
                    raise _NoChange(result)
                if self._notify:
                    await conn.execute(self._notify_stmt, {"payload": str(version)})
        except _NoChange as unchanged:
            async with self.engine.connect() as conn:
                return Committed(unchanged.result, await current_version(conn), changed=False)
        log.info("policy change committed", extra={"fields": {"version": version, "action": action, "actor": actor}})
        for listener in list(self._listeners):
            await listener(version)
        return Committed(result, version, changed=True)
