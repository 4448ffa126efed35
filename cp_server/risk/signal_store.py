"""Storing signals: a gap-free sequence, the direction's current state, acknowledgements, audit and NOTIFY.

Every signal goes through ``SignalStore.issue`` (DISABLE/ENABLE of a direction, automatic or operator) or
``SignalStore.issue_pair_status`` (a pair's relationship status changed by a policy change) inside the caller's
transaction. The sequence comes from one counter row (``risk_signal_seq``) updated in that transaction: the row
lock is held until commit, so signals commit in sequence order and a subscriber resuming "after sequence N" can
never miss one that committed late with a smaller number. On PostgreSQL the same transaction sends ``pg_notify``
on the signal channel, delivered to the other CP replicas at commit.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, cast, overload

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk import tables as t
from cp_server.risk.ledger import dec_str
from cp_server.risk.plan import compensation_offer
from cp_server.risk.sql import insert_ignore
from xporty.cp.v1 import policy_pb2, signal_pb2

DISABLE = "DISABLE"
ENABLE = "ENABLE"
PAIR_STATUS = "PAIR_STATUS"
ALERT = "ALERT"
ALERT_CLEARED = "ALERT_CLEARED"
AUTOMATIC = "AUTOMATIC"
OPERATOR = "OPERATOR"
POLICY = "POLICY"
PAIR_STATUSES = ("ACTIVE", "PAUSED", "BLOCKED")
MAX_REASON_CHARS = 512  # risk_signals.reason


class Auditor(Protocol):
    """What the signal store needs of CP-core's ``AuditLog``."""

    async def append(
        self,
        conn: AsyncConnection,
        *,
        actor: str,
        action: str,
        subject: str,
        before: Any,
        after: Any,
        correlation_id: str | None = None,
    ) -> Any: ...


@dataclass(frozen=True)
class SignalRecord:
    """A stored signal."""

    sequence: int
    signal_id: str
    kind: str
    source: str
    exporter_wl: str
    importer_wl: str
    reason: str
    correlation_id: str
    issue_time: dt.datetime
    actor: str
    plan_required: Decimal | None = None
    plan_offers: list[dict[str, str]] = field(default_factory=list)
    trigger_event_id: str | None = None
    trigger_received_at: dt.datetime | None = None
    pair_status: str | None = None
    """PAIR_STATUS only: ACTIVE | PAUSED | BLOCKED (exporter_wl/importer_wl are then the pair's wl_a/wl_b)."""
    policy_version: int | None = None
    """PAIR_STATUS only: the policy version at which the status changed."""

    def concerns(self, wl_id: str) -> bool:
        """True if ``wl_id`` is the exporter or the importer of the signal's direction."""
        return wl_id in (self.exporter_wl, self.importer_wl)

    def to_proto(self) -> signal_pb2.Signal:
        msg = signal_pb2.Signal(
            signal_id=self.signal_id,
            sequence=self.sequence,
            # protoc's .pyi types EnumTypeWrapper.Value() as int; the constructor wants the enum type.
            kind=cast(signal_pb2.SignalKind, signal_pb2.SignalKind.Value(f"SIGNAL_KIND_{self.kind}")),
            source=cast(signal_pb2.SignalSource, signal_pb2.SignalSource.Value(f"SIGNAL_SOURCE_{self.source}")),
            exporter_wl=self.exporter_wl,
            importer_wl=self.importer_wl,
            reason=self.reason,
            correlation_id=self.correlation_id,
        )
        msg.issue_time.FromDatetime(self.issue_time)
        if self.pair_status is not None:
            msg.pair_status = cast(
                policy_pb2.RelationshipStatus,
                policy_pb2.RelationshipStatus.Value(f"RELATIONSHIP_STATUS_{self.pair_status}"),
            )
            msg.policy_version = self.policy_version or 0
        if self.plan_required is not None:
            msg.plan.required_reference_value = dec_str(self.plan_required)
            msg.plan.offers.extend(compensation_offer(offer) for offer in self.plan_offers)
        return msg

    @classmethod
    def from_row(cls, row: Any) -> SignalRecord:
        return cls(
            sequence=int(row.sequence),
            signal_id=row.signal_id,
            kind=row.kind,
            source=row.source,
            exporter_wl=row.exporter_wl,
            importer_wl=row.importer_wl,
            reason=row.reason,
            correlation_id=row.correlation_id,
            issue_time=row.issue_time,
            actor=row.actor,
            plan_required=Decimal(row.plan_required) if row.plan_required is not None else None,
            plan_offers=json.loads(row.plan_offers),
            trigger_event_id=row.trigger_event_id,
            trigger_received_at=row.trigger_received_at,
            pair_status=row.pair_status,
            policy_version=int(row.policy_version) if row.policy_version is not None else None,
        )


@dataclass(frozen=True)
class DirectionState:
    """Whether a direction is disabled now, by which source and signal."""

    disabled: bool
    source: str
    signal_id: str


InsertHook = Callable[[AsyncConnection, "SignalRecord"], Awaitable[None]]
"""Runs in a signal's own transaction, right after it is stored."""


class SignalStore:
    """Issue, read and acknowledge signals. ``notify_channel`` is used on PostgreSQL only."""

    def __init__(self, audit: Auditor, *, notify_channel: str) -> None:
        self._audit = audit
        self._channel = notify_channel
        self._insert_hooks: list[InsertHook] = []

    async def issue(
        self,
        conn: AsyncConnection,
        *,
        kind: str,
        source: str,
        exporter_wl: str,
        importer_wl: str,
        reason: str,
        correlation_id: str,
        now: dt.datetime,
        actor: str,
        plan_required: Decimal | None = None,
        plan_offers: Sequence[dict[str, str]] = (),
        trigger_event_id: str | None = None,
        trigger_received_at: dt.datetime | None = None,
    ) -> SignalRecord:
        """Store a DISABLE/ENABLE signal, update the direction's state and audit it, all in ``conn``'s transaction."""
        record = SignalRecord(
            sequence=await self._next_sequence(conn),
            signal_id=uuid.uuid4().hex,
            kind=kind,
            source=source,
            exporter_wl=exporter_wl,
            importer_wl=importer_wl,
            reason=reason,
            correlation_id=correlation_id,
            issue_time=now,
            actor=actor,
            plan_required=plan_required,
            plan_offers=list(plan_offers),
            trigger_event_id=trigger_event_id,
            trigger_received_at=trigger_received_at,
        )
        await self._insert(conn, record)
        before = await self.direction(conn, exporter_wl, importer_wl)
        after = DirectionState(disabled=kind == DISABLE, source=source, signal_id=record.signal_id)
        values = {"disabled": after.disabled, "source": source, "signal_id": record.signal_id, "updated_at": now}
        if before is None:
            await conn.execute(t.direction_state.insert().values(
                exporter_wl=exporter_wl, importer_wl=importer_wl, **values))
        else:
            await conn.execute(
                t.direction_state.update()
                .where(t.direction_state.c.exporter_wl == exporter_wl, t.direction_state.c.importer_wl == importer_wl)
                .values(**values)
            )
        await self._audit.append(
            conn,
            actor=actor,
            action=f"signal.{kind.lower()}",
            subject=f"direction/{exporter_wl}->{importer_wl}",
            before=_state_dict(before),
            after={**_state_dict(after), "sequence": record.sequence, "reason": reason,
                   "plan_required": dec_str(plan_required) if plan_required is not None else None},
            correlation_id=correlation_id,
        )
        await self._notify(conn, record)
        return record

    async def issue_pair_status(
        self,
        conn: AsyncConnection,
        *,
        wl_a: str,
        wl_b: str,
        status: str,
        previous: str | None,
        policy_version: int,
        reason: str,
        correlation_id: str,
        now: dt.datetime,
        actor: str,
    ) -> SignalRecord:
        """Store a PAIR_STATUS signal for the pair {wl_a, wl_b} (both directions, both WLs) and audit it, in
        ``conn``'s transaction — the policy change's own, so the signal exists iff the change committed.

        The direction states of risk signals are not touched: a pair status and a disabled direction are
        independent, and a node refuses trade while either says so.
        """
        if status not in PAIR_STATUSES:
            raise ValueError(f"unknown pair status {status!r}")
        a, b = (wl_a, wl_b) if wl_a < wl_b else (wl_b, wl_a)
        record = SignalRecord(
            sequence=await self._next_sequence(conn), signal_id=uuid.uuid4().hex, kind=PAIR_STATUS, source=POLICY,
            exporter_wl=a, importer_wl=b, reason=reason, correlation_id=correlation_id, issue_time=now, actor=actor,
            pair_status=status, policy_version=policy_version,
        )
        await self._insert(conn, record)
        await self._audit.append(
            conn,
            actor=actor,
            action="signal.pair_status",
            subject=f"pair/{a}/{b}",
            before={"status": previous} if previous is not None else None,
            after={"status": status, "policy_version": policy_version, "sequence": record.sequence,
                   "signal_id": record.signal_id, "reason": reason},
            correlation_id=correlation_id,
        )
        await self._notify(conn, record)
        return record

    async def issue_alert(
        self, conn: AsyncConnection, *, wl_a: str, wl_b: str, raised: bool, reason: str, correlation_id: str,
        now: dt.datetime, actor: str, trigger_event_id: str | None = None,
    ) -> SignalRecord:
        """Store an ALERT (``raised``) or ALERT_CLEARED signal for the pair {wl_a, wl_b}, to both WLs, in
        ``conn``'s transaction (the threshold crossing's own). It changes no direction or pair state: nodes show it
        to their apps and acknowledge it, which is what the reaction time of an alert measures."""
        a, b = (wl_a, wl_b) if wl_a < wl_b else (wl_b, wl_a)
        record = SignalRecord(
            sequence=await self._next_sequence(conn), signal_id=uuid.uuid4().hex,
            kind=ALERT if raised else ALERT_CLEARED, source=AUTOMATIC, exporter_wl=a, importer_wl=b, reason=reason,
            correlation_id=correlation_id,
            issue_time=now, actor=actor, trigger_event_id=trigger_event_id,
            trigger_received_at=now if trigger_event_id else None,
        )
        await self._insert(conn, record)
        await self._audit.append(
            conn, actor=actor, action=f"signal.{record.kind.lower()}", subject=f"pair/{a}/{b}", before=None,
            after={"sequence": record.sequence, "signal_id": record.signal_id, "reason": reason},
            correlation_id=correlation_id,
        )
        await self._notify(conn, record)
        return record

    async def _next_sequence(self, conn: AsyncConnection) -> int:
        # The counter row's lock is held until commit: signals commit in sequence order.
        row = await conn.execute(
            t.signal_seq.update().where(t.signal_seq.c.id == 1)
            .values(value=t.signal_seq.c.value + 1).returning(t.signal_seq.c.value)
        )
        return int(row.scalar_one())

    def add_insert_hook(self, hook: InsertHook) -> None:
        """``await hook(conn, record)`` runs in every signal's own transaction (e.g. queueing its webhook)."""
        self._insert_hooks.append(hook)

    async def _insert(self, conn: AsyncConnection, r: SignalRecord) -> None:
        a, b = (r.exporter_wl, r.importer_wl) if r.exporter_wl < r.importer_wl else (r.importer_wl, r.exporter_wl)
        await conn.execute(
            t.signals.insert().values(
                sequence=r.sequence, signal_id=r.signal_id, kind=r.kind, source=r.source,
                exporter_wl=r.exporter_wl, importer_wl=r.importer_wl, wl_a=a, wl_b=b, reason=r.reason,
                correlation_id=r.correlation_id, issue_time=r.issue_time,
                plan_required=dec_str(r.plan_required) if r.plan_required is not None else None,
                plan_offers=json.dumps(list(r.plan_offers)), actor=r.actor, trigger_event_id=r.trigger_event_id,
                trigger_received_at=r.trigger_received_at, pair_status=r.pair_status, policy_version=r.policy_version,
            )
        )
        for hook in self._insert_hooks:
            await hook(conn, r)

    async def _notify(self, conn: AsyncConnection, record: SignalRecord) -> None:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_notify(self._channel, str(record.sequence))))

    async def direction(self, conn: AsyncConnection, exporter_wl: str, importer_wl: str) -> DirectionState | None:
        """The current state of a direction, or None if no signal ever concerned it."""
        d = t.direction_state
        row = (await conn.execute(
            sa.select(d.c.disabled, d.c.source, d.c.signal_id)
            .where(d.c.exporter_wl == exporter_wl, d.c.importer_wl == importer_wl)
        )).first()
        return DirectionState(bool(row.disabled), row.source, row.signal_id) if row else None

    async def after(
        self, conn: AsyncConnection, after_sequence: int, *, wl_id: str | None = None, limit: int = 10_000
    ) -> list[SignalRecord]:
        """Signals with a sequence greater than ``after_sequence`` (concerning ``wl_id`` if given), oldest first."""
        s = t.signals
        query = sa.select(s).where(s.c.sequence > after_sequence).order_by(s.c.sequence).limit(limit)
        if wl_id is not None:
            query = query.where(sa.or_(s.c.exporter_wl == wl_id, s.c.importer_wl == wl_id))
        return [SignalRecord.from_row(r) for r in (await conn.execute(query)).all()]

    async def latest(self, conn: AsyncConnection, limit: int) -> list[SignalRecord]:
        """The newest ``limit`` signals, newest first."""
        s = t.signals
        rows = (await conn.execute(sa.select(s).order_by(s.c.sequence.desc()).limit(limit))).all()
        return [SignalRecord.from_row(r) for r in rows]

    async def last_sequence(self, conn: AsyncConnection) -> int:
        row = (await conn.execute(sa.select(t.signal_seq.c.value).where(t.signal_seq.c.id == 1))).first()
        return int(row.value) if row else 0

    async def get(self, conn: AsyncConnection, signal_id: str) -> SignalRecord | None:
        row = (await conn.execute(sa.select(t.signals).where(t.signals.c.signal_id == signal_id))).first()
        return SignalRecord.from_row(row) if row else None

    async def record_ack(
        self,
        conn: AsyncConnection,
        *,
        signal_id: str,
        wl_id: str,
        effective_time: dt.datetime,
        received_at: dt.datetime,
        via: str,
    ) -> bool:
        """Store a node's acknowledgement once (the first one wins); True if it was new."""
        result = await conn.execute(
            insert_ignore(conn, t.signal_acks, ["signal_id", "wl_id"]).values(
                signal_id=signal_id, wl_id=wl_id, effective_time=effective_time, received_at=received_at, via=via
            )
        )
        return bool(result.rowcount)


@overload
def _state_dict(state: DirectionState) -> dict[str, Any]: ...


@overload
def _state_dict(state: DirectionState | None) -> dict[str, Any] | None: ...


def _state_dict(state: DirectionState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"disabled": state.disabled, "source": state.source, "signal_id": state.signal_id}
