"""The dashboard as a CP component: ``DashboardService/CreateLoginLink`` (operators and WL identities), the HTTPS
app on ``CpSettings.dashboard.http_listen`` (when set), and the hourly pruning of old rollups, links and sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from cp_server.risk_services import settings_of
from cp_server.rollups import tables as rollups
from cp_server.rollups.buckets import hour_of, month_of
from cp_server.settings.dashboard import DashboardSettings
from cp_server.slo.report import SloReporter
from xporty.cp.v1 import dashboard_service_pb2, dashboard_service_pb2_grpc
from xwl_runtime import correlation
from xwl_runtime.component import BackgroundLoop, Component
from xwl_runtime.errors import FailedPrecondition
from xwl_runtime.identity import Identity
from xwl_runtime.pipeline import caller
from xwl_runtime.pki import PkiDir

from .access import Access, scope_of
from .server import DashboardServer
from .web import Sources, create_app

if TYPE_CHECKING:
    from cp_server.context import CpContext

SERVICE = dashboard_service_pb2.DESCRIPTOR.services_by_name["DashboardService"].full_name
PRUNE_INTERVAL_S = 3600.0


def settings_from(ctx: CpContext) -> DashboardSettings:
    value = getattr(ctx.settings, "dashboard", None)
    return value if isinstance(value, DashboardSettings) else DashboardSettings()


class DashboardServicer(dashboard_service_pb2_grpc.DashboardServiceServicer):
    """CreateLoginLink: a one-time link for the caller's identity."""

    def __init__(self, access: Access, server: DashboardServer | None) -> None:
        self._access = access
        self._server = server

    async def CreateLoginLink(  # noqa: N802 - gRPC method name
        self, request: dashboard_service_pb2.CreateLoginLinkRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> dashboard_service_pb2.CreateLoginLinkResponse:
        if self._server is None:
            raise FailedPrecondition("this CP serves no dashboard (start it with --http-listen)",
                                     reason="DASHBOARD_DISABLED")
        identity = caller()
        token, expires = await self._access.create_link(identity, correlation.get())
        resp = dashboard_service_pb2.CreateLoginLinkResponse(url=f"{self._server.base_url}/login/{token}",
                                                             scope_wl=scope_of(identity) or "")
        resp.expire_time.FromDatetime(expires)
        return resp


@dataclass
class Dashboard:
    """The built feature: its component, the access store and the HTTPS server (None without ``http_listen``)."""

    component: Component
    access: Access
    server: DashboardServer | None


async def prune(ctx: CpContext, settings: DashboardSettings, access: Access, now: dt.datetime) -> None:
    """Delete rollups past their retention, and expired links and sessions.

    A bucket goes once all of it is older than the retention (it ended by now − retention), so the current hour
    and month are kept whatever the retention, and with them the current KPIs."""
    async with ctx.engine.begin() as conn:
        h, m = rollups.hours, rollups.months
        await conn.execute(h.delete().where(h.c.hour < hour_of(now - settings.hour_retention)))
        await conn.execute(m.delete().where(m.c.month < month_of(now - settings.month_retention)))
    await access.prune(now)


def install(ctx: CpContext) -> Dashboard:
    settings = settings_from(ctx)
    access = Access(ctx.engine, ctx.audit, ctx.clock, settings)
    server = None
    if settings.http_listen:
        sources = Sources(ctx.engine, ctx.clock, ctx.audit, settings_of(ctx).trend_window, SloReporter(ctx.engine))
        pki = PkiDir(ctx.settings.pki_dir)
        server = DashboardServer(create_app(access, sources, settings), settings.http_listen,
                                 pki.cert(Identity.cp()), pki.key(Identity.cp()))
    servicer = DashboardServicer(access, server)

    def register(grpc_server: grpc.aio.Server) -> None:
        dashboard_service_pb2_grpc.add_DashboardServiceServicer_to_server(servicer, grpc_server)

    async def pruning(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await prune(ctx, settings, access, ctx.clock.now())
            await ctx.clock.wait_any(stop, timeout=PRUNE_INTERVAL_S)

    loops: list[BackgroundLoop] = [pruning]
    if server is not None:
        loops.append(server.run)
    component = Component(name="dashboard", registrations=[register], service_names=[SERVICE], loops=loops)
    return Dashboard(component, access, server)
