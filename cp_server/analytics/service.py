"""AnalyticsService (operators only): balance table, alerts, signals, discrepancies."""

from __future__ import annotations

from typing import Any, Protocol

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.risk import tables as t
from cp_server.risk.ledger import dec_str
from cp_server.risk.report import balance_table
from cp_server.risk.signal_store import SignalStore
from cp_server.settings.risk import RiskSettings
from xporty.cp.v1 import analytics_pb2, analytics_service_pb2, analytics_service_pb2_grpc
from xwl_runtime.clock import Clock

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _level(name: str) -> int:
    return int(analytics_pb2.AlertLevel.Value(f"ALERT_LEVEL_{name}"))


class SloHandler(Protocol):
    async def slo_report(self, request: analytics_service_pb2.GetSloReportRequest
                         ) -> analytics_service_pb2.GetSloReportResponse: ...


class AnalyticsServicer(analytics_service_pb2_grpc.AnalyticsServiceServicer):
    """Read-only reports over the risk store."""

    def __init__(self, engine: AsyncEngine, store: SignalStore, settings: RiskSettings, clock: Clock,
                 slo: SloHandler) -> None:
        self._engine = engine
        self._store = store
        self._settings = settings
        self._clock = clock
        self._slo = slo
        """GetSloReport is the SLO feature's (``cp_server/slo``)."""

    async def GetSloReport(  # noqa: N802 - gRPC method name
        self, request: analytics_service_pb2.GetSloReportRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> analytics_service_pb2.GetSloReportResponse:
        return await self._slo.slo_report(request)

    async def GetBalances(  # noqa: N802 - gRPC method name
        self,
        request: analytics_service_pb2.GetBalancesRequest,
        context: grpc.aio.ServicerContext[
            analytics_service_pb2.GetBalancesRequest, analytics_service_pb2.GetBalancesResponse
        ],
    ) -> analytics_service_pb2.GetBalancesResponse:
        async with self._engine.connect() as conn:
            rows = await balance_table(conn, now=self._clock.now(), window=self._settings.trend_window)
        out = analytics_service_pb2.GetBalancesResponse()
        for r in rows:
            msg = out.balances.add(
                wl_a=r.wl_a, wl_b=r.wl_b, exports_a_to_b=dec_str(r.balance.exports_ab),
                exports_b_to_a=dec_str(r.balance.exports_ba), net_delta=dec_str(r.balance.net),
                limit=dec_str(r.limit), utilisation=dec_str(r.utilisation) if r.utilisation.is_finite() else "Infinity",
                trend_per_hour=dec_str(r.trend_per_hour), level=_level(r.level.name),
            )
            if r.time_to_limit is not None:
                msg.time_to_limit.FromTimedelta(r.time_to_limit)
        return out

    async def ListAlerts(  # noqa: N802 - gRPC method name
        self,
        request: analytics_service_pb2.ListAlertsRequest,
        context: grpc.aio.ServicerContext[
            analytics_service_pb2.ListAlertsRequest, analytics_service_pb2.ListAlertsResponse
        ],
    ) -> analytics_service_pb2.ListAlertsResponse:
        a = t.alerts
        query = sa.select(a).order_by(a.c.open.desc(), a.c.raise_time.desc(), a.c.alert_id).limit(MAX_PAGE)
        if request.open_only:
            query = query.where(a.c.open.is_(True))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = analytics_service_pb2.ListAlertsResponse()
        for r in rows:
            msg = out.alerts.add(alert_id=r.alert_id, wl_a=r.wl_a, wl_b=r.wl_b, level=_level(r.level),
                                 utilisation=r.utilisation, correlation_id=r.correlation_id, open=bool(r.open),
                                 reason=r.reason)
            msg.raise_time.FromDatetime(r.raise_time)
        return out

    async def ListSignals(  # noqa: N802 - gRPC method name
        self,
        request: analytics_service_pb2.ListSignalsRequest,
        context: grpc.aio.ServicerContext[
            analytics_service_pb2.ListSignalsRequest, analytics_service_pb2.ListSignalsResponse
        ],
    ) -> analytics_service_pb2.ListSignalsResponse:
        size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        async with self._engine.connect() as conn:
            records = await self._store.latest(conn, size)
        return analytics_service_pb2.ListSignalsResponse(signals=[r.to_proto() for r in records])

    async def ListDiscrepancies(  # noqa: N802 - gRPC method name
        self,
        request: analytics_service_pb2.ListDiscrepanciesRequest,
        context: grpc.aio.ServicerContext[
            analytics_service_pb2.ListDiscrepanciesRequest, analytics_service_pb2.ListDiscrepanciesResponse
        ],
    ) -> analytics_service_pb2.ListDiscrepanciesResponse:
        d = t.discrepancies
        async with self._engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(d).where(d.c.resolved_at.is_(None)).order_by(d.c.detect_time, d.c.order_id).limit(MAX_PAGE)
            )).all()
        out = analytics_service_pb2.ListDiscrepanciesResponse()
        for r in rows:
            msg = out.discrepancies.add(order_id=r.order_id, exporter_wl=r.exporter_wl, importer_wl=r.importer_wl,
                                        correlation_id=r.correlation_id, reason=r.reason, category=r.category,
                                        export_amount=r.export_amount or "", import_amount=r.import_amount or "",
                                        export_quantity=r.export_quantity or 0, import_quantity=r.import_quantity or 0,
                                        disputed_value=r.disputed_value or "", event_id=r.event_id or "",
                                        reporter_wl=r.reporter_wl or "")
            msg.detect_time.FromDatetime(r.detect_time)
        return out
