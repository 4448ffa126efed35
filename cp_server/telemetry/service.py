"""TelemetryService: signed ledger and enforcement events from WL nodes (thin servicer over the risk engine), and
the nodes' offer digests (``ReportOffers``, over ``cp_server.offer_digest``) that compensation plans rank."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import grpc

from cp_server.metrics import CpMetrics
from cp_server.offer_digest.store import DigestStore
from cp_server.risk.engine import RiskEngine
from cp_server.risk.signal_hub import SignalHub
from cp_server.settings.risk import RiskSettings
from xporty.cp.v1 import telemetry_service_pb2, telemetry_service_pb2_grpc
from xwl_runtime.clock import Clock
from xwl_runtime.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from xwl_runtime.pipeline import caller

from .verifier import SignerDirectory, check_batch_async
from .verify_pool import SignatureVerifier

log = logging.getLogger(__name__)


class OperationsHandler(Protocol):
    async def report_operations(self, request: telemetry_service_pb2.ReportOperationsRequest,
                                caller_pem: bytes | None) -> telemetry_service_pb2.ReportOperationsResponse: ...


class TelemetryServicer(telemetry_service_pb2_grpc.TelemetryServiceServicer):
    """PublishEvents: verify every event, store the good ones once, count and report the rest."""

    def __init__(
        self, engine: RiskEngine, signers: SignerDirectory, hub: SignalHub, settings: RiskSettings, clock: Clock,
        operations: OperationsHandler, verifier: SignatureVerifier | None = None, digests: DigestStore | None = None,
        metrics: CpMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._operations = operations
        """ReportOperations is the SLO feature's (``cp_server/slo``)."""
        self._engine = engine
        self._digests = digests
        self._verifier = verifier or SignatureVerifier(workers=0)
        self._signers = signers
        self._hub = hub
        self._settings = settings
        self._clock = clock

    async def PublishEvents(  # noqa: N802 - gRPC method name
        self,
        request: telemetry_service_pb2.PublishEventsRequest,
        context: grpc.aio.ServicerContext[
            telemetry_service_pb2.PublishEventsRequest, telemetry_service_pb2.PublishEventsResponse
        ],
    ) -> telemetry_service_pb2.PublishEventsResponse:
        received_at = self._clock.now()  # CP receipt: the start of the reaction time
        ident = caller()
        if len(request.events) > self._settings.max_batch:
            raise InvalidArgument.field("events", f"at most {self._settings.max_batch} events per batch")
        auth = context.auth_context() or {}
        pems = list(auth.get("x509_pem_cert") or ())
        signers = await self._signers.resolve(
            {e.signer_certificate_sha256 for e in request.events}, pems[0] if pems else None)
        candidates, refused = await check_batch_async(request.events, signers, ident.wl_id,
                                                       self._verifier)
        result = await self._engine.ingest(ident.wl_id, candidates, refused, received_at=received_at)
        if result.signals:
            await self._hub.publish(result.signals)
        if self._metrics is not None:
            self._metrics.events_ingested.inc(result.accepted)
            for r in result.rejected:
                self._metrics.events_refused.labels(r.reason).inc()
        if result.rejected:
            log.info("events refused", extra={"fields": {
                "wl_id": ident.wl_id, "refused": len(result.rejected),
                "reasons": sorted({r.reason for r in result.rejected})}})
        return telemetry_service_pb2.PublishEventsResponse(
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=[telemetry_service_pb2.RejectedEvent(index=r.index, event_id=r.event_id, reason=r.reason)
                      for r in result.rejected],
        )

    async def ReportOperations(  # noqa: N802 - gRPC method name
        self, request: telemetry_service_pb2.ReportOperationsRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> telemetry_service_pb2.ReportOperationsResponse:
        auth = context.auth_context() or {}
        pems = list(auth.get("x509_pem_cert") or ())  # the caller's certificate may be the report's signer
        return await self._operations.report_operations(request, pems[0] if pems else None)

    async def ReportOffers(  # noqa: N802 - gRPC method name
        self,
        request: telemetry_service_pb2.ReportOffersRequest,
        context: grpc.aio.ServicerContext[
            telemetry_service_pb2.ReportOffersRequest, telemetry_service_pb2.ReportOffersResponse
        ],
    ) -> telemetry_service_pb2.ReportOffersResponse:
        ident = caller()
        if request.exporter_wl and request.exporter_wl != ident.wl_id:
            raise PermissionDenied("a node reports only its own offers", reason="CALLER_MISMATCH",
                                   metadata={"exporter_wl": request.exporter_wl})
        if self._digests is None:
            raise FailedPrecondition("offer digests are not stored by this CP", reason="DIGESTS_DISABLED")
        stored, digests = await self._digests.report(ident.wl_id, request.digests, self._clock.now())
        log.info("offer digests stored", extra={"fields": {
            "wl_id": ident.wl_id, "stored": stored,
            "destinations": {d.destination_wl: len(d.offers) for d in digests}}})
        return telemetry_service_pb2.ReportOffersResponse(stored=stored)
