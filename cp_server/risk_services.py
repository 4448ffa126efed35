"""The risk feature as a CP component: TelemetryService, SignalService, AnalyticsService and their loops.

Loops: the reconciliation loop (discrepancies, limit changes, trend pruning) and, on PostgreSQL, the listener
that brings signals committed by other CP replicas to this replica's WatchSignals streams. The signal hub is
separate from the policy hub, so signals are never queued behind policy snapshots.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import grpc

from cp_server.analytics.service import AnalyticsServicer, SloHandler
from cp_server.metrics import ALERTS_OPEN, PAIR_UTILISATION
from cp_server.offer_digest.store import DigestStore
from cp_server.offer_digest.validation import Limits
from cp_server.risk import report
from cp_server.risk.engine import RiskEngine
from cp_server.risk.reconcile import Reconciler
from cp_server.risk.signal_hub import SignalHub
from cp_server.risk.signal_store import SignalRecord, SignalStore
from cp_server.rollups.writer import RollupWriter
from cp_server.settings.risk import RiskSettings
from cp_server.signals.service import SignalServicer
from cp_server.telemetry.service import OperationsHandler, TelemetryServicer
from cp_server.telemetry.verifier import SignerDirectory
from cp_server.telemetry.verify_pool import SignatureVerifier
from xporty.cp.v1 import (
    analytics_service_pb2,
    analytics_service_pb2_grpc,
    signal_service_pb2,
    signal_service_pb2_grpc,
    telemetry_service_pb2,
    telemetry_service_pb2_grpc,
)
from xwl_runtime.component import BackgroundLoop, Component
from xwl_runtime.db import is_sqlite
from xwl_runtime.metrics import Samples
from xwl_runtime.notify import NotifyListener

if TYPE_CHECKING:
    from cp_server.context import CpContext

TELEMETRY = telemetry_service_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name
SIGNALS = signal_service_pb2.DESCRIPTOR.services_by_name["SignalService"].full_name
ANALYTICS = analytics_service_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name



class SloHandlers(OperationsHandler, SloHandler, Protocol):
    """What the SLO feature serves through this component's services (``cp_server.slo.component.Slo`` fits)."""


@dataclass
class RiskParts:
    """The built objects, for tests and benches that drive them directly."""

    engine: RiskEngine
    store: SignalStore
    hub: SignalHub
    reconciler: Reconciler
    listener: NotifyListener | None
    verifier: SignatureVerifier | None = None
    digests: DigestStore | None = None
    telemetry: TelemetryServicer | None = None
    analytics: AnalyticsServicer | None = None


def settings_of(ctx: CpContext) -> RiskSettings:
    """The risk settings in the context (``CpSettings.risk`` once folded in), else the defaults."""
    risk = getattr(ctx.settings, "risk", None)
    return risk if isinstance(risk, RiskSettings) else RiskSettings()


def build(ctx: CpContext, settings: RiskSettings | None = None, *, slo: SloHandlers) -> tuple[Component, RiskParts]:
    """Build the component and expose its parts; ``slo``: the SLO feature, which serves ReportOperations and
    GetSloReport of the services this component registers."""
    settings = settings or settings_of(ctx)
    store = SignalStore(ctx.audit, notify_channel=settings.signal_channel)

    async def load_after(sequence: int) -> list[SignalRecord]:
        async with ctx.engine.connect() as conn:
            return await store.after(conn, sequence)

    hub = SignalHub(load_after, queue_size=settings.subscriber_queue)
    risk = RiskEngine(ctx.engine, store, ctx.audit, settings, rollups=RollupWriter())
    reconciler = Reconciler(ctx.engine, risk, hub, ctx.audit, settings, ctx.clock)
    listener = None if is_sqlite(ctx.settings.db_url) else NotifyListener(ctx.settings.db_url,
                                                                          settings.signal_channel, hub)
    verifier = SignatureVerifier(settings.verify_workers, settings.verify_parallel_min)
    digests = DigestStore(ctx.engine, risk.gate.begin,
                          Limits(settings.digest_max_offers, settings.digest_max_destinations))
    telemetry = TelemetryServicer(risk, SignerDirectory(ctx.engine), hub, settings, ctx.clock, slo, verifier,
                                  digests, metrics=ctx.metrics)
    ctx.metrics.track_subscribers("signals", lambda: hub.subscriber_count)

    async def risk_gauges() -> Samples:
        async with ctx.engine.connect() as conn:
            pairs = await report.utilisations(conn)
            alerts = await report.open_alerts(conn)
        return {PAIR_UTILISATION.name: [((f"{a}/{b}",), float(u)) for a, b, u in pairs],
                ALERTS_OPEN.name: [((reason,), float(n)) for reason, n in sorted(alerts.items())]}

    ctx.metrics.track_store([PAIR_UTILISATION, ALERTS_OPEN], risk_gauges)
    signals = SignalServicer(ctx.engine, store, hub, risk, ctx.clock,
                             heartbeat_interval=ctx.settings.heartbeat_interval)
    analytics = AnalyticsServicer(ctx.engine, store, settings, ctx.clock, slo)

    def register(server: grpc.aio.Server) -> None:
        telemetry_service_pb2_grpc.add_TelemetryServiceServicer_to_server(telemetry, server)
        signal_service_pb2_grpc.add_SignalServiceServicer_to_server(signals, server)
        analytics_service_pb2_grpc.add_AnalyticsServiceServicer_to_server(analytics, server)

    started = asyncio.Event()

    async def start_hub(stop: asyncio.Event) -> None:
        # The hub starts at the store's current sequence; later signals reach it by publish/refresh.
        async with ctx.engine.connect() as conn:
            await hub.start(await store.last_sequence(conn))
        started.set()
        await stop.wait()
        hub.close()

    async def reconcile(stop: asyncio.Event) -> None:
        await started.wait()
        await reconciler.run(stop)

    loops: list[BackgroundLoop] = [start_hub, reconcile]
    if listener is not None:
        loops.append(listener.run)

    async def close_streams() -> None:
        hub.close()

    component = Component(
        name="risk",
        registrations=[register],
        service_names=[TELEMETRY, SIGNALS, ANALYTICS],
        loops=loops,
        on_drain=[close_streams],  # signal streams end at once: their subscribers reconnect elsewhere
        on_stop=[verifier.close],  # the workers start with the first large batch; they stop after the last call
    )
    return component, RiskParts(risk, store, hub, reconciler, listener, verifier, digests, telemetry=telemetry,
                                analytics=analytics)


