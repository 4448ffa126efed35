"""SignalService: WatchSignals (replay + live push + heartbeats), AckSignal, SendSignal (operators)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.risk.engine import RiskEngine
from cp_server.risk.signal_hub import SignalHub
from cp_server.risk.signal_store import DISABLE, ENABLE, SignalStore
from cp_server.store import validation
from xporty.cp.v1 import signal_pb2, signal_service_pb2, signal_service_pb2_grpc
from xwl_runtime import correlation
from xwl_runtime.clock import Clock
from xwl_runtime.errors import Aborted, InvalidArgument, NotFound, PermissionDenied, echo
from xwl_runtime.identity import Kind
from xwl_runtime.pipeline import caller
from xwl_runtime.text import bounded

REPLAY_PAGE = 1000
MAX_REASON = 512
MAX_SIGNAL_ID_CHARS = 128


class SignalServicer(signal_service_pb2_grpc.SignalServiceServicer):
    """Thin translation between the proto and the signal store, hub and risk engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: SignalStore,
        hub: SignalHub,
        risk: RiskEngine,
        clock: Clock,
        *,
        heartbeat_interval: dt.timedelta,
    ) -> None:
        self._engine = engine
        self._store = store
        self._hub = hub
        self._risk = risk
        self._clock = clock
        self._heartbeat_s = heartbeat_interval.total_seconds()

    async def WatchSignals(  # noqa: N802 - gRPC method name
        self,
        request: signal_service_pb2.WatchSignalsRequest,
        context: grpc.aio.ServicerContext[
            signal_service_pb2.WatchSignalsRequest, signal_service_pb2.WatchSignalsResponse
        ],
    ) -> AsyncIterator[signal_service_pb2.WatchSignalsResponse]:
        ident = caller()
        if ident.kind is Kind.WL:
            wl_id = request.wl_id or ident.wl_id
            if wl_id != ident.wl_id:
                raise PermissionDenied("a WL node watches only its own signals", reason="OTHER_WL",
                                       metadata={"wl_id": request.wl_id})
        else:
            if not request.wl_id:
                raise InvalidArgument.field("wl_id", "required for operators")
            wl_id = request.wl_id
        # Subscribe before replaying, so nothing committed in between is missed; duplicates are skipped by sequence.
        sub = self._hub.subscribe(lambda r: r.concerns(wl_id))
        try:
            last = request.after_sequence
            while True:
                async with self._engine.connect() as conn:
                    page = await self._store.after(conn, last, wl_id=wl_id, limit=REPLAY_PAGE)
                for record in page:
                    yield signal_service_pb2.WatchSignalsResponse(signal=record.to_proto())
                    last = record.sequence
                if len(page) < REPLAY_PAGE:
                    break
            yield self._heartbeat(sub.queue.empty(), last)
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), timeout=self._heartbeat_s)
                except TimeoutError:
                    yield self._heartbeat(sub.queue.empty(), last)
                    continue
                if item is None:
                    if sub.lagged:
                        raise Aborted("signal stream fell behind; resume with after_sequence",
                                      reason="SUBSCRIBER_LAGGED", metadata={"after_sequence": str(last)})
                    return
                if item.sequence <= last:
                    continue
                yield signal_service_pb2.WatchSignalsResponse(signal=item.to_proto())
                last = item.sequence
        finally:
            sub.close()

    def _heartbeat(self, idle: bool, last_sent: int) -> signal_service_pb2.WatchSignalsResponse:
        # A client may resume from the heartbeat's sequence: only claim the hub's position when nothing is queued.
        seq = max(last_sent, self._hub.last_sequence) if idle else last_sent
        return signal_service_pb2.WatchSignalsResponse(heartbeat_sequence=seq)

    async def AckSignal(  # noqa: N802 - gRPC method name
        self,
        request: signal_service_pb2.AckSignalRequest,
        context: grpc.aio.ServicerContext[signal_service_pb2.AckSignalRequest, signal_service_pb2.AckSignalResponse],
    ) -> signal_service_pb2.AckSignalResponse:
        ident = caller()
        if not request.signal_id:
            raise InvalidArgument.field("signal_id", "required")
        bounded("signal_id", request.signal_id, max_chars=MAX_SIGNAL_ID_CHARS)
        if not request.HasField("effective_time"):
            raise InvalidArgument.field("effective_time", "required")
        effective = request.effective_time.ToDatetime(tzinfo=dt.UTC)
        async with self._risk.gate.begin() as conn:
            record = await self._store.get(conn, request.signal_id)
            if record is None:
                raise NotFound(f"no signal {echo(request.signal_id)}", reason="UNKNOWN_SIGNAL")
            if not record.concerns(ident.wl_id):
                raise PermissionDenied("the signal does not concern the caller's WL", reason="OTHER_WL")
            await self._store.record_ack(conn, signal_id=record.signal_id, wl_id=ident.wl_id,
                                         effective_time=effective, received_at=self._clock.now(), via="rpc")
        return signal_service_pb2.AckSignalResponse()

    async def SendSignal(  # noqa: N802 - gRPC method name
        self,
        request: signal_service_pb2.SendSignalRequest,
        context: grpc.aio.ServicerContext[signal_service_pb2.SendSignalRequest, signal_service_pb2.SendSignalResponse],
    ) -> signal_service_pb2.SendSignalResponse:
        ident = caller()
        kinds = {signal_pb2.SIGNAL_KIND_DISABLE: DISABLE, signal_pb2.SIGNAL_KIND_ENABLE: ENABLE}
        if request.kind not in kinds:
            raise InvalidArgument.field("kind", "DISABLE or ENABLE")
        validation.wl_id("exporter_wl", request.exporter_wl)
        validation.wl_id("importer_wl", request.importer_wl)
        if request.importer_wl == request.exporter_wl:
            raise InvalidArgument.field("importer_wl", "must differ from exporter_wl")
        reason = validation.text("reason", request.reason, max_chars=MAX_REASON)
        record = await self._risk.operator_signal(
            kind=kinds[request.kind], exporter_wl=request.exporter_wl, importer_wl=request.importer_wl,
            reason=reason, actor=ident.spiffe_id, correlation_id=correlation.get() or correlation.new_correlation_id(),
            now=self._clock.now(),
        )
        await self._hub.publish([record])
        return signal_service_pb2.SendSignalResponse(signal=record.to_proto())
