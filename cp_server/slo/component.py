"""The SLO feature of the CP: ReportOperations ingest (signed reports: ``signed``) and GetSloReport, served by the
risk component's TelemetryService and AnalyticsService; the reported sync lags as a scrape-time gauge."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cp_server.metrics import SYNC_LAG
from cp_server.telemetry.verifier import SignerDirectory
from xporty.cp.v1 import analytics_pb2, analytics_service_pb2, telemetry_service_pb2
from xwl_runtime.component import Component
from xwl_runtime.errors import InvalidArgument
from xwl_runtime.metrics import Samples
from xwl_runtime.pipeline import caller

from .report import Figure, SloReporter, SyncLag
from .signed import open_report
from .store import OperationsStore

if TYPE_CHECKING:
    from cp_server.context import CpContext

TELEMETRY = telemetry_service_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name
ANALYTICS = analytics_service_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name
DEFAULT_WINDOW_S = 3600
MAX_WINDOW_S = 30 * 24 * 3600


def figure_proto(f: Figure) -> analytics_pb2.SloFigure:
    return analytics_pb2.SloFigure(name=f.name, scope=f.scope, value="" if f.value is None else format(f.value, "f"),
                                   target=format(f.target, "f"), unit=f.unit, breach=f.breach, samples=f.samples)


def sync_lag_proto(lag: SyncLag) -> analytics_pb2.CatalogSyncLag:
    out = analytics_pb2.CatalogSyncLag(importer_wl=lag.importer_wl, exporter_wl=lag.exporter_wl,
                                       level_seconds=lag.level_s, seconds=round(lag.seconds, 3))
    out.measure_time.FromDatetime(lag.measured_at)
    return out


@dataclass
class Slo:
    """The handlers the telemetry and analytics servicers delegate to."""

    component: Component
    store: OperationsStore
    reporter: SloReporter
    ctx: CpContext
    signers: SignerDirectory

    async def report_operations(self, request: telemetry_service_pb2.ReportOperationsRequest,
                                caller_pem: bytes | None) -> telemetry_service_pb2.ReportOperationsResponse:
        ident = caller()
        report = await open_report(request, self.signers, caller_pem, ident.wl_id,
                                   allow_unsigned=self.ctx.settings.insecure_dev)
        await self.store.ingest(ident.wl_id, report, self.ctx.clock.now())
        return telemetry_service_pb2.ReportOperationsResponse()

    async def slo_report(self, request: analytics_service_pb2.GetSloReportRequest
                         ) -> analytics_service_pb2.GetSloReportResponse:
        window_s = request.window_seconds or DEFAULT_WINDOW_S
        if not 0 < window_s <= MAX_WINDOW_S:
            raise InvalidArgument.field("window_seconds", f"1 to {MAX_WINDOW_S}")
        now = self.ctx.clock.now()
        figures = await self.reporter.report(now, dt.timedelta(seconds=window_s))
        lags = await self.reporter.sync_lags(now)
        resp = analytics_service_pb2.GetSloReportResponse(figures=[figure_proto(f) for f in figures],
                                                          window_seconds=window_s,
                                                          sync_lags=[sync_lag_proto(x) for x in lags])
        resp.generate_time.FromDatetime(now)
        return resp


def install(ctx: CpContext) -> Slo:
    reporter = SloReporter(ctx.engine)

    async def lag_gauges() -> Samples:
        lags = await reporter.sync_lags(ctx.clock.now())
        return {SYNC_LAG.name: [((x.importer_wl, x.exporter_wl), x.seconds) for x in lags]}

    ctx.metrics.track_store([SYNC_LAG], lag_gauges)
    return Slo(component=Component(name="slo"), store=OperationsStore(ctx.engine), reporter=reporter, ctx=ctx,
               signers=SignerDirectory(ctx.engine))
