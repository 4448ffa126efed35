"""The risk enforcer: applies the CP's DISABLE/ENABLE signals for this node's directions and acknowledges them.

It keeps ``SignalService.WatchSignals`` open (resuming after the last applied sequence, persisted; reconnecting
with jittered backoff capped at a few seconds; reopening on a rotated CP channel). For each signal, in order:

1. the direction's state changes in memory at once — from then on ``is_disabled`` / ``signal_gate`` refuse it —
   and the listeners run (the catalog hides or marks the direction's imported offers);
2. one transaction persists the direction's state, the new cursor and an ``ENFORCEMENT_ACK`` ledger event (through
   the telemetry queue) stamped with the time the enforcement took effect;
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

from .tables import CURSOR, directions, signal_cursor

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

_SOURCES = {signal_pb2.SIGNAL_SOURCE_AUTOMATIC: "AUTOMATIC", signal_pb2.SIGNAL_SOURCE_OPERATOR: "OPERATOR"}


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
    ) -> None:
        self._engine = engine
        self._cp = cp
        self._clock = clock
        self.wl_id = wl_id
        self.config = config or EnforcerConfig()
        cap = self.config.reconnect_cap_s
        self._backoff = backoff or Backoff(base_s=min(0.2, cap), cap_s=cap)
        self._on_enqueued = on_enqueued
        self._directions: dict[tuple[str, str], DirectionState] = {}
        self._listeners: list[DirectionListener] = []
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

    def stale(self) -> bool:
        """True when the risk view is older than ``max_view_age`` (or there never was contact)."""
        return self.contact_at is None or self._clock.now() - self.contact_at > self.config.max_view_age

    def direction(self, exporter_wl: str, importer_wl: str) -> DirectionState | None:
        return self._directions.get((exporter_wl, importer_wl))

    def disabled_directions(self) -> list[DirectionState]:
        return [d for d in self._directions.values() if d.disabled]

    def signal_gate(self, exporter_wl: str, importer_wl: str) -> str | None:
        """The refusal reason for trade ``exporter_wl`` → ``importer_wl`` or None (``SignalGate`` of the checkout)."""
        if self.stale():
            return RISK_VIEW_STALE
        state = self._directions.get((exporter_wl, importer_wl))
        if state is not None and state.disabled:
            return DIRECTION_DISABLED
        return None

    def is_disabled(self, exporter_wl: str, importer_wl: str) -> bool:
        """True when the direction is disabled by a signal, or the risk view is stale (fail closed)."""
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

    async def _save_cursor(self, conn: AsyncConnection) -> None:
        await conn.execute(sa.update(signal_cursor).where(signal_cursor.c.name == CURSOR)
                           .values(after_sequence=self.after_sequence, contact_at=self.contact_at))

    # --- applying -----------------------------------------------------------------------------------------------
    async def apply(self, signal: signal_pb2.Signal) -> bool:
        """Enforce one signal (see the module docstring); False if it was already applied."""
        async with self._apply_lock:
            if signal.sequence <= self.after_sequence:
                return False
            if signal.kind not in (signal_pb2.SIGNAL_KIND_DISABLE, signal_pb2.SIGNAL_KIND_ENABLE):
                log.warning("signal of unknown kind skipped", extra={"fields": {"signal_id": signal.signal_id}})
                self.after_sequence = signal.sequence
                return False
            effective = self._clock.now()
            state = DirectionState(
                exporter_wl=signal.exporter_wl, importer_wl=signal.importer_wl,
                disabled=signal.kind == signal_pb2.SIGNAL_KIND_DISABLE, signal_id=signal.signal_id,
                sequence=signal.sequence, source=_SOURCES.get(signal.source, "UNSPECIFIED"),
                reason=signal.reason[:512], correlation_id=signal.correlation_id or f"signal-{signal.signal_id}",
                effective_at=effective,
            )
            # Effective first (memory), durable next: a crash in between replays the signal after restart.
            previous = self.after_sequence
            self._directions[(state.exporter_wl, state.importer_wl)] = state
            self.after_sequence = signal.sequence
            self.contact_at = effective
            await self._notify(state)
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(sa.delete(directions).where(
                        directions.c.exporter_wl == state.exporter_wl, directions.c.importer_wl == state.importer_wl))
                    await conn.execute(sa.insert(directions).values(**state.__dict__))
                    await self._save_cursor(conn)
                    await enqueue(conn, self._ack_event(state), now=effective)
                self._persisted_contact = effective
            except sa.exc.SQLAlchemyError:
                self.after_sequence = previous  # the reconnecting stream replays it (the state stays enforced)
                raise
            if self._on_enqueued is not None:
                self._on_enqueued()
            log.info("signal enforced", extra={"fields": {
                "signal_id": state.signal_id, "sequence": state.sequence, "disabled": state.disabled,
                "exporter_wl": state.exporter_wl, "importer_wl": state.importer_wl, "source": state.source,
                "correlation_id": state.correlation_id}})
        await self._ack(state)
        return True

    def _ack_event(self, state: DirectionState) -> telemetry_pb2.LedgerEvent:
        event = telemetry_pb2.LedgerEvent(
            wl_id=self.wl_id, correlation_id=state.correlation_id, kind=telemetry_pb2.LEDGER_EVENT_KIND_ENFORCEMENT_ACK,
            exporter_wl=state.exporter_wl, importer_wl=state.importer_wl, signal_id=state.signal_id)
        event.occur_time.FromDatetime(state.effective_at)
        return event

    async def _notify(self, state: DirectionState) -> None:
        for listener in list(self._listeners):
            try:
                result = listener(state)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - one listener's failure must not stop enforcement
                log.exception("direction listener failed", extra={"fields": {"signal_id": state.signal_id}})

    async def _ack(self, state: DirectionState) -> None:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(state.effective_at)
        try:
            async with self._cp.lease() as channel:
                await signal_service_pb2_grpc.SignalServiceStub(channel).AckSignal(
                    signal_service_pb2.AckSignalRequest(signal_id=state.signal_id, effective_time=stamp),
                    timeout=self.config.ack_timeout_s, metadata=self._cp.metadata())
            self.acks_sent += 1
        except grpc.aio.AioRpcError as err:
            log.warning("AckSignal failed; the queued ENFORCEMENT_ACK event will acknowledge it", extra={"fields": {
                "signal_id": state.signal_id, "code": err.code().name}})

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
        while not stop.is_set():
            self._rotated.clear()
            session = asyncio.create_task(self._session(), name="signal-watch-session")
            interrupt = asyncio.create_task(_wait_any(stop, self._rotated))
            try:
                await asyncio.wait({session, interrupt}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (session, interrupt):
                    task.cancel()
                await asyncio.gather(session, interrupt, return_exceptions=True)
            self.connected = False
            handling = self._handling
            if handling is not None and not handling.done():
                await asyncio.wait({handling})
            self._log_end(session)
            if stop.is_set():
                break
            if self._rotated.is_set():
                continue
            await _wait_any(stop, self._rotated, timeout=self._backoff.next_delay())

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


async def _wait_any(*events: asyncio.Event, timeout: float | None = None) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
