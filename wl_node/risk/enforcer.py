"""The risk enforcer: applies the CP's signals for this node's directions and pairs and acknowledges them.

Signals are DISABLE/ENABLE of one direction (automatic or operator) and PAIR_STATUS (a policy change set a pair
ACTIVE, PAUSED or BLOCKED; both directions; the newest policy version wins, see ``pair_status``). The enforcer
keeps ``SignalService.WatchSignals`` open (resuming after the last applied sequence, persisted; reconnecting with
jittered backoff capped at a few seconds; reopening on a rotated CP channel). For each signal, in order:

1. the direction's (or pair's) state changes in memory at once — from then on ``is_disabled`` / ``signal_gate``
   refuse it — and the listeners run (the catalog hides or marks the direction's or pair's imported offers);
2. one transaction persists the direction's (pair's) state, the new cursor and an ``ENFORCEMENT_ACK`` ledger
   event (through the telemetry queue) stamped with the time the enforcement took effect;
3. ``AckSignal(effective_time)`` is sent to the CP with a deadline (if that fails, the queued ENFORCEMENT_ACK
   carries the acknowledgement when the CP is back).

A signal at or below the cursor is ignored (a replay applies nothing twice). Heartbeats and signals are contact:
a node whose last contact with the signal stream is older than ``max_view_age`` cannot know whether a direction
was disabled meanwhile, so it **fails closed**: ``is_disabled`` is True for every direction it is asked about
(reason ``RISK_VIEW_STALE``) until the stream is back. The contact time is persisted, so a restart within the
bound keeps trading and a restart after it does not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wl_node.cp_channel import CpChannel
from wl_node.telemetry.queue import enqueue
from xporty.cp.v1 import signal_pb2, signal_service_pb2, signal_service_pb2_grpc, telemetry_pb2
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.loops import supervise_stream

from .pair_status import PairStatusState, pair_key
from .tables import CURSOR, directions, signal_cursor
from .tables import pair_status as pair_rows

log = logging.getLogger(__name__)

DIRECTION_DISABLED = "DIRECTION_DISABLED"
RISK_VIEW_STALE = "RISK_VIEW_STALE"


@dataclass(frozen=True)
class EnforcerConfig:
    """Knobs of the enforcer, with their defaults."""

    max_view_age: dt.timedelta = dt.timedelta(minutes=5)
    """Fail closed when the last contact with the signal stream is older than this (≫ the CP's heartbeat)."""
    reconnect_cap_s: float = 3.0
    """Cap of the jittered reconnect backoff of the signal stream."""
    ack_timeout_s: float = 2.0
    """Deadline of one AckSignal call."""


@dataclass(frozen=True)
class DirectionState:
    """The latest signal applied to one direction."""

    exporter_wl: str
    importer_wl: str
    disabled: bool
    signal_id: str
    sequence: int
    source: str
    reason: str
    correlation_id: str
    effective_at: dt.datetime


DirectionListener = Callable[[DirectionState], Awaitable[None] | None]
"""Called after a direction changed (the catalog hides/marks the imported offers of a disabled direction)."""

PairListener = Callable[[PairStatusState], Awaitable[None] | None]
"""Called after a pair's status changed by signal (the catalog hides/marks the pair's imported offers)."""

_SOURCES = {signal_pb2.SIGNAL_SOURCE_AUTOMATIC: "AUTOMATIC", signal_pb2.SIGNAL_SOURCE_OPERATOR: "OPERATOR",
            signal_pb2.SIGNAL_SOURCE_POLICY: "POLICY"}
_DIRECTION_KINDS = (signal_pb2.SIGNAL_KIND_DISABLE, signal_pb2.SIGNAL_KIND_ENABLE)
_ALERT_KINDS = (signal_pb2.SIGNAL_KIND_ALERT, signal_pb2.SIGNAL_KIND_ALERT_CLEARED)

AlertListener = Callable[[signal_pb2.Signal, dt.datetime], None]
"""Called when an ALERT / ALERT_CLEARED signal is applied (the alert board shows it to the WL's apps)."""


class Enforcer:
    """Signal consumer and per-direction disabled state (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        cp: CpChannel,
        clock: Clock,
        wl_id: str,
        *,
        config: EnforcerConfig | None = None,
        backoff: Backoff | None = None,
        on_enqueued: Callable[[], None] | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> None:
        self._on_stage = on_stage or (lambda _stage: None)  # metrics: received / applied / acked
        self._engine = engine
        self._cp = cp
        self._clock = clock
        self.wl_id = wl_id
        self.config = config or EnforcerConfig()
        cap = self.config.reconnect_cap_s
        self._backoff = backoff or Backoff(base_s=min(0.2, cap), cap_s=cap)
        self._on_enqueued = on_enqueued
        self._directions: dict[tuple[str, str], DirectionState] = {}
        self._pairs: dict[tuple[str, str], PairStatusState] = {}
        self._listeners: list[DirectionListener] = []
        self._pair_listeners: list[PairListener] = []
        self._alert_listeners: list[AlertListener] = []
        self._rotated = asyncio.Event()
        self._apply_lock = asyncio.Lock()
        self._handling: asyncio.Future[Any] | None = None
        cp.add_rotation_listener(self._rotated.set)
        self.after_sequence = 0
        self.contact_at: dt.datetime | None = None
        self._persisted_contact: dt.datetime | None = None
        self.connected = False
        self.acks_sent = 0

    # --- reading ------------------------------------------------------------------------------------------------
    def add_listener(self, listener: DirectionListener) -> None:
        """``listener(state)`` (sync or async) runs after every change of a direction."""
        self._listeners.append(listener)

    def add_alert_listener(self, listener: AlertListener) -> None:
        self._alert_listeners.append(listener)

    def add_pair_listener(self, listener: PairListener) -> None:
        """``listener(state)`` (sync or async) runs after a PAIR_STATUS signal changed a pair's state."""
        self._pair_listeners.append(listener)

    def stale(self) -> bool:
        """True when the risk view is older than ``max_view_age`` (or there never was contact)."""
        return self.contact_at is None or self._clock.now() - self.contact_at > self.config.max_view_age

    def direction(self, exporter_wl: str, importer_wl: str) -> DirectionState | None:
        return self._directions.get((exporter_wl, importer_wl))

    def disabled_directions(self) -> list[DirectionState]:
        return [d for d in self._directions.values() if d.disabled]

    def pair_status(self, wl_x: str, wl_y: str) -> PairStatusState | None:
        """The newest PAIR_STATUS signal applied to the pair {wl_x, wl_y}, or None if none ever concerned it."""
        return self._pairs.get(pair_key(wl_x, wl_y))

    def signal_gate(self, exporter_wl: str, importer_wl: str) -> str | None:
        """The refusal reason for trade ``exporter_wl`` → ``importer_wl`` or None (``SignalGate`` of the checkout).

        In order: the pair's status by signal (``PAIR_PAUSED``, ``PAIR_BLOCKED``, ``PAIR_NOT_ACTIVE``), a stale
        risk view (``RISK_VIEW_STALE``), the direction disabled by a risk or operator signal (``DIRECTION_DISABLED``).
        """
        status = self._pairs.get(pair_key(exporter_wl, importer_wl))
        if status is not None and not status.active:
            return status.refusal
        if self.stale():
            return RISK_VIEW_STALE
        state = self._directions.get((exporter_wl, importer_wl))
        if state is not None and state.disabled:
            return DIRECTION_DISABLED
        return None

    def is_disabled(self, exporter_wl: str, importer_wl: str) -> bool:
        """True when the direction is disabled or its pair not ACTIVE by a signal, or the risk view is stale."""
        return self.signal_gate(exporter_wl, importer_wl) is not None

    # --- persistence --------------------------------------------------------------------------------------------
    async def load(self) -> None:
        """Restore the cursor, the contact time and the directions' states from the store."""
        async with self._engine.begin() as conn:
            row = (await conn.execute(sa.select(signal_cursor).where(signal_cursor.c.name == CURSOR))).first()
            if row is None:
                await conn.execute(sa.insert(signal_cursor).values(name=CURSOR, after_sequence=0, contact_at=None))
            else:
                self.after_sequence = int(row.after_sequence)
                self.contact_at = row.contact_at
            for r in (await conn.execute(sa.select(directions))).mappings():
                state = DirectionState(**dict(r))
                self._directions[(state.exporter_wl, state.importer_wl)] = state
            for r in (await conn.execute(sa.select(pair_rows))).mappings():
                pair = PairStatusState(**dict(r))
                self._pairs[(pair.wl_a, pair.wl_b)] = pair

    async def _save_cursor(self, conn: AsyncConnection) -> None:
        await conn.execute(sa.update(signal_cursor).where(signal_cursor.c.name == CURSOR)
                           .values(after_sequence=self.after_sequence, contact_at=self.contact_at))

    # --- applying -----------------------------------------------------------------------------------------------
    async def apply(self, signal: signal_pb2.Signal) -> bool:
        """Enforce one signal (see the module docstring); False if it was already applied."""
        self._on_stage("received")
        async with self._apply_lock:
            if signal.sequence <= self.after_sequence:
                return False
            if signal.kind not in (*_DIRECTION_KINDS, *_ALERT_KINDS, signal_pb2.SIGNAL_KIND_PAIR_STATUS):
                log.warning("signal of unknown kind skipped", extra={"fields": {"signal_id": signal.signal_id}})
                self.after_sequence = signal.sequence
                return False
            effective = self._clock.now()
            if signal.kind == signal_pb2.SIGNAL_KIND_PAIR_STATUS:
                applied: _Applied = self._pair_change(signal, effective)
            elif signal.kind in _ALERT_KINDS:
                applied = self._alert_change(signal, effective)
            else:
                applied = self._direction_change(signal, effective)
            # Effective first (memory), durable next: a crash in between replays the signal after restart.
            previous = self.after_sequence
            applied.enforce()
            self.after_sequence = signal.sequence
            self.contact_at = effective
            await applied.notify()
            try:
                async with self._engine.begin() as conn:
                    await applied.persist(conn)
                    await self._save_cursor(conn)
                    await enqueue(conn, self._ack_event(signal, effective), now=effective)
                self._persisted_contact = effective
            except sa.exc.SQLAlchemyError:
                self.after_sequence = previous  # the reconnecting stream replays it (the state stays enforced)
                raise
            if self._on_enqueued is not None:
                self._on_enqueued()
            log.info("signal enforced", extra={"fields": {
                "signal_id": signal.signal_id, "sequence": signal.sequence, "kind": applied.kind,
                "exporter_wl": signal.exporter_wl, "importer_wl": signal.importer_wl, "source": applied.source,
                "effect": applied.effect, "correlation_id": signal.correlation_id}})
            self._on_stage("applied")
        await self._ack(signal.signal_id, effective)
        return True

    def _direction_change(self, signal: signal_pb2.Signal, effective: dt.datetime) -> _Applied:
        state = DirectionState(
            exporter_wl=signal.exporter_wl, importer_wl=signal.importer_wl,
            disabled=signal.kind == signal_pb2.SIGNAL_KIND_DISABLE, signal_id=signal.signal_id,
            sequence=signal.sequence, source=_SOURCES.get(signal.source, "UNSPECIFIED"),
            reason=signal.reason[:512], correlation_id=signal.correlation_id or f"signal-{signal.signal_id}",
            effective_at=effective,
        )

        def enforce() -> None:
            self._directions[(state.exporter_wl, state.importer_wl)] = state

        async def persist(conn: AsyncConnection) -> None:
            await conn.execute(sa.delete(directions).where(
                directions.c.exporter_wl == state.exporter_wl, directions.c.importer_wl == state.importer_wl))
            await conn.execute(sa.insert(directions).values(**state.__dict__))

        return _Applied("DISABLE" if state.disabled else "ENABLE", state.source,
                        "disabled" if state.disabled else "enabled", enforce,
                        lambda: self._run_listeners(self._listeners, state, state.signal_id), persist)

    def _pair_change(self, signal: signal_pb2.Signal, effective: dt.datetime) -> _Applied:
        state = PairStatusState.from_signal(signal, effective)
        key = (state.wl_a, state.wl_b)
        current = self._pairs.get(key)
        source = _SOURCES.get(signal.source, "UNSPECIFIED")
        if current is not None and current.policy_version > state.policy_version:
            # Superseded (a newer policy version already applied): acknowledged, changes nothing.
            return _Applied("PAIR_STATUS", source, f"superseded by v{current.policy_version}", _nothing,
                            _nothing_async, _nothing_conn)

        def enforce() -> None:
            self._pairs[key] = state

        async def persist(conn: AsyncConnection) -> None:
            await conn.execute(sa.delete(pair_rows).where(pair_rows.c.wl_a == state.wl_a,
                                                          pair_rows.c.wl_b == state.wl_b))
            await conn.execute(sa.insert(pair_rows).values(**state.__dict__))

        return _Applied("PAIR_STATUS", source, state.status, enforce,
                        lambda: self._run_listeners(self._pair_listeners, state, state.signal_id), persist)

    def _alert_change(self, signal: signal_pb2.Signal, effective: dt.datetime) -> _Applied:
        """An alert changes no trade: it is shown (listeners) and acknowledged; nothing to persist but the cursor."""
        raised = signal.kind == signal_pb2.SIGNAL_KIND_ALERT

        def enforce() -> None:
            for listener in list(self._alert_listeners):
                listener(signal, effective)

        return _Applied("ALERT" if raised else "ALERT_CLEARED", _SOURCES.get(signal.source, "UNSPECIFIED"),
                        "alert raised" if raised else "alert cleared", enforce, _nothing_async, _nothing_conn)

    def _ack_event(self, signal: signal_pb2.Signal, effective: dt.datetime) -> telemetry_pb2.LedgerEvent:
        # For PAIR_STATUS, exporter_wl/importer_wl are the pair's wl_a/wl_b: a registered pair this WL is party to.
        event = telemetry_pb2.LedgerEvent(
            wl_id=self.wl_id, correlation_id=signal.correlation_id or f"signal-{signal.signal_id}",
            kind=telemetry_pb2.LEDGER_EVENT_KIND_ENFORCEMENT_ACK, exporter_wl=signal.exporter_wl,
            importer_wl=signal.importer_wl, signal_id=signal.signal_id)
        event.occur_time.FromDatetime(effective)
        return event

    @staticmethod
    async def _run_listeners(listeners: list[Any], state: object, signal_id: str) -> None:
        for listener in list(listeners):
            try:
                result = listener(state)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - one listener's failure must not stop enforcement
                log.exception("enforcement listener failed", extra={"fields": {"signal_id": signal_id}})

    async def _ack(self, signal_id: str, effective: dt.datetime) -> None:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(effective)
        try:
            async with self._cp.lease() as channel:
                await signal_service_pb2_grpc.SignalServiceStub(channel).AckSignal(
                    signal_service_pb2.AckSignalRequest(signal_id=signal_id, effective_time=stamp),
                    timeout=self.config.ack_timeout_s, metadata=self._cp.metadata())
            self.acks_sent += 1
            self._on_stage("acked")
        except grpc.aio.AioRpcError as err:
            log.warning("AckSignal failed; the queued ENFORCEMENT_ACK event will acknowledge it", extra={"fields": {
                "signal_id": signal_id, "code": err.code().name}})

    async def _heartbeat(self, sequence: int) -> None:
        now = self._clock.now()
        self.contact_at = now
        async with self._apply_lock:
            # The CP's heartbeat sequence is a safe resume point (nothing for us is queued before it).
            moved = sequence > self.after_sequence
            self.after_sequence = max(self.after_sequence, sequence)
            # Persisting every heartbeat would be a write per node every few seconds; the contact time only has
            # to be good to a fraction of the staleness bound.
            due = self._persisted_contact is None or now - self._persisted_contact > self.config.max_view_age / 4
            if moved or due:
                async with self._engine.begin() as conn:
                    await self._save_cursor(conn)
                self._persisted_contact = now

    # --- the stream ---------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Watch signals until ``stop`` is set."""
        await supervise_stream(self._session, stop=stop, rotated=self._rotated, backoff=self._backoff,
                               after_session=self._after_session, name="signal-watch-session", clock=self._clock)

    async def _after_session(self, session: asyncio.Task[None]) -> None:
        self.connected = False
        handling = self._handling
        if handling is not None and not handling.done():
            await asyncio.wait({handling})
        self._log_end(session)

    async def _session(self) -> None:
        request = signal_service_pb2.WatchSignalsRequest(after_sequence=self.after_sequence)
        async with self._cp.lease() as channel:
            call = signal_service_pb2_grpc.SignalServiceStub(channel).WatchSignals(
                request, metadata=self._cp.metadata())  # no deadline: a watch lives as long as the connection
            async for message in call:
                if not self.connected:
                    self.connected = True
                    self._backoff.reset()
                    log.info("signal stream connected", extra={"fields": {"after_sequence": request.after_sequence}})
                kind = message.WhichOneof("event")
                # Shielded: a stop or rotation must not cut an apply between enforcing and persisting; ``run``
                # waits for it before reconnecting or returning (the store is closed after the loops end).
                if kind == "signal":
                    self._handling = asyncio.ensure_future(self.apply(message.signal))
                elif kind == "heartbeat_sequence":
                    self._handling = asyncio.ensure_future(self._heartbeat(message.heartbeat_sequence))
                else:
                    continue
                await asyncio.shield(self._handling)

    @staticmethod
    def _log_end(session: asyncio.Task[None]) -> None:
        if session.cancelled():
            return
        err = session.exception()
        if err is None:
            log.info("signal stream closed by the CP")
        elif isinstance(err, grpc.aio.AioRpcError):
            log.warning("signal stream broken", extra={"fields": {"code": err.code().name}})
        elif isinstance(err, sa.exc.SQLAlchemyError):
            log.error("applying a signal failed; reconnecting", exc_info=err)
        else:
            log.error("signal stream failed", exc_info=err)


@dataclass(frozen=True)
class _Applied:
    """What applying one signal does: change memory, run listeners, write its row (in the cursor's transaction)."""

    kind: str
    source: str
    effect: str
    enforce: Callable[[], None]
    notify: Callable[[], Awaitable[None]]
    persist: Callable[[AsyncConnection], Awaitable[None]]


def _nothing() -> None:
    return None


async def _nothing_async() -> None:
    return None


async def _nothing_conn(conn: AsyncConnection) -> None:
    return None


