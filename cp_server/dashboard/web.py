"""The dashboard's HTTP app (Starlette, ASGI): HTML pages, their JSON API, CSV downloads, login and logout.

| path | what |
| --- | --- |
| ``GET /login/<token>`` | redeems a one-time link, sets the session cookie, then loads ``/`` |
| ``POST /logout`` | ends the session and clears the cookie |
| ``GET /``, ``/balance``, ``/heatmap``, ``/alerts``, ``/operations``, ``/pairs/<wl_a>/<wl_b>`` | pages |
| ``GET /api/<page>`` (``/api/pairs/<wl_a>/<wl_b>``) | the page's JSON: ``{"page", "figures", "tables"}`` |
| ``GET /api/<page>/<table>.csv`` | one table of that JSON as CSV |

Without a live session every path but ``/login`` and ``/static`` answers 401; a pair outside the principal's WL
403; an unknown pair 404. Responses are ``no-store`` with a strict Content-Security-Policy (no script runs; the
charts are inline SVG) and no referrer (a login URL must not leak).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cp_server.audit.log import AuditLog
from cp_server.settings.dashboard import DashboardSettings
from cp_server.slo.report import Figure, SloReporter
from xwl_runtime.clock import Clock
from xwl_runtime.errors import NotFound, PermissionDenied
from xwl_runtime.identity import Identity

from . import pages, pair_pages
from .access import COOKIE, Access, Principal
from .model import Page
from .svg import bars

HERE = Path(__file__).parent
NAV = [("/", "Overview"), ("/balance", "Balance of trade"), ("/heatmap", "Risk heatmap"), ("/alerts", "Alerts"),
       ("/operations", "Operations")]
TITLES = dict(NAV)
SLO_WINDOW = dt.timedelta(hours=1)
AUDIT_CACHE_S = 30.0
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@dataclass
class Sources:
    """What the pages read: the store, the clock, the SLO reporter and the audit log."""

    engine: AsyncEngine
    clock: Clock
    audit: AuditLog
    trend_window: dt.timedelta
    slo: SloReporter
    _audit_cache: tuple[float, tuple[bool, int, int]] | None = None

    async def audit_status(self) -> tuple[bool, int, int]:
        """The audit log's verification, re-run at most every 30 s (it reads and checks every record)."""
        now = time.monotonic()
        if self._audit_cache is None or now - self._audit_cache[0] > AUDIT_CACHE_S:
            self._audit_cache = (now, await self.audit.verify(self.engine))
        return self._audit_cache[1]

    async def slo_figures(self, p: Principal) -> list[Figure] | None:
        """The live SLO report (last hour), for XporY operators only (it spans every WL)."""
        return await self.slo.report(self.clock.now(), SLO_WINDOW) if p.wl is None else None


def _wl(value: str) -> str:
    try:
        Identity.wl(value)
    except ValueError:
        raise NotFound("no such pair", reason="UNKNOWN_PAIR") from None
    return value


async def build_page(src: Sources, p: Principal, name: str, params: dict[str, str]) -> Page:
    """The data of page ``name`` for ``p`` (raises PermissionDenied / NotFound)."""
    now = src.clock.now()
    async with src.engine.connect() as conn:
        if name == "overview":
            return await pages.overview(conn, p, now, await src.slo_figures(p))
        if name == "balance":
            return await pair_pages.balance(conn, p, now, src.trend_window)
        if name == "heatmap":
            return await pages.heatmap(conn, p)
        if name == "alerts":
            return await pages.alerts(conn, p, await src.slo_figures(p))
        if name == "operations":
            return await pages.operations(conn, p, now, await src.audit_status() if p.wl is None else None)
        if name == "pair":
            a, b = sorted((_wl(params["wl_a"]), _wl(params["wl_b"])))
            return await pair_pages.pair(conn, p, a, b, now, src.trend_window)
    raise NotFound("no such page")


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)
    return HTMLResponse(_env().get_template("message.html").render(title=str(status), message=message, refresh=None),
                        status_code=status, headers=SECURITY_HEADERS)


_ENV: jinja2.Environment | None = None


def _env() -> jinja2.Environment:
    global _ENV  # one template environment per process (templates are read-only package data)
    if _ENV is None:
        _ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                  undefined=jinja2.StrictUndefined)
    return _ENV


def _chart(page: Page) -> str:
    if page.name == "overview":
        rows = list(reversed(page.tables["gmv_by_month"].rows))
        return bars([(str(r[0]), Decimal(str(r[1]))) for r in rows], label="GMV per month (reference unit)")
    if page.name == "balance":
        return bars([(str(r[0]), Decimal(str(r[1]))) for r in page.tables["daily"].rows],
                    label="traded per day (reference unit)")
    if page.name == "pair":
        cols = page.tables["daily"].columns
        i = cols.index("net_delta_end")
        return bars([(str(r[0]), Decimal(str(r[i]))) for r in page.tables["daily"].rows],
                    label="net delta at the end of the day")
    return ""


def _heatmap_cells(page: Page) -> dict[tuple[str, str], dict[str, str]]:
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for a, b, u, _net, _limit, level, status, disabled in page.tables["pairs"].rows:
        value = Decimal(str(u))
        band = 4 if value > 1 else 3 if value >= Decimal("0.8") else 2 if value >= Decimal("0.6") else \
            1 if value > 0 else 0
        cls = " ".join(c for c in (f"u{band}", str(status).lower() if status != "ACTIVE" else "",
                                   "disabled" if disabled else "") if c)
        label = "∞" if value.is_infinite() else f"{(value * 100).quantize(Decimal('1'))}%"
        cell = {"a": str(a), "b": str(b), "u": str(u), "cls": cls, "label": label, "status": str(status),
                "level": str(level), "disabled": str(disabled)}
        cells[(str(a), str(b))] = cells[(str(b), str(a))] = cell
    return cells


def create_app(access: Access, src: Sources, settings: DashboardSettings) -> Starlette:
    """The ASGI app."""
    session_s = int(settings.session_ttl.total_seconds())

    def guarded(handler: Callable[[Request, Principal], Awaitable[Response]]
                ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            principal = await access.principal(request.cookies.get(COOKIE))
            if principal is None:
                return _error(request, 401, "not signed in: open a link from 'xcwl dashboard login'")
            try:
                response = await handler(request, principal)
            except PermissionDenied:
                return _error(request, 403, "this data belongs to another WL")
            except NotFound as err:
                return _error(request, 404, str(err))
            response.headers.update(SECURITY_HEADERS)
            return response
        return endpoint

    def page_name(request: Request) -> str:
        if "page" in request.path_params:
            return str(request.path_params["page"])
        if "wl_a" in request.path_params:
            return "pair"
        return request.url.path.strip("/") or "overview"

    async def api(request: Request, p: Principal) -> Response:
        page = await build_page(src, p, page_name(request), dict(request.path_params))
        return JSONResponse(page.to_json())

    async def csv(request: Request, p: Principal) -> Response:
        page = await build_page(src, p, page_name(request), dict(request.path_params))
        table = page.tables.get(request.path_params["table"])
        if table is None:
            raise NotFound("no such table")
        filename = f"{page.name}-{request.path_params['table']}.csv"
        return PlainTextResponse(table.to_csv(), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    async def html(request: Request, p: Principal) -> Response:
        name = page_name(request)
        page = await build_page(src, p, name, dict(request.path_params))
        if name == "pair":
            title = f"Pair {page.figures['wl_a']} / {page.figures['wl_b']}"
            api_path = f"/api/pairs/{page.figures['wl_a']}/{page.figures['wl_b']}"
        else:
            title = TITLES["/" if name == "overview" else f"/{name}"]
            api_path = f"/api/{name}"
        context: dict[str, Any] = {
            "title": title, "nav": NAV, "principal": p, "page": page, "api": api_path, "chart": _chart(page),
            "pair_link": lambda row: f"/pairs/{row[0]}/{row[1]}",
        }
        if name == "heatmap":
            context.update(wls=page.figures["wls"], cells=_heatmap_cells(page))
        return HTMLResponse(_env().get_template(f"{name}.html").render(**context))

    async def login(request: Request) -> Response:
        opened = await access.redeem(request.path_params["token"])
        if opened is None:
            return _error(request, 401, "this link was already used or has expired: run 'xcwl dashboard login' "
                                        "again")
        session, _ = opened
        # A page rather than a redirect: the next request is then initiated by this site, so the SameSite=Strict
        # cookie goes with it even when the link was opened from another application.
        response = HTMLResponse(_env().get_template("message.html").render(
            title="Signed in", message="Opening the dashboard…", refresh="/"), headers=SECURITY_HEADERS)
        response.set_cookie(COOKIE, session, max_age=session_s, path="/", secure=True, httponly=True,
                            samesite="strict")
        return response

    async def logout(request: Request) -> Response:
        await access.logout(request.cookies.get(COOKIE))
        response = RedirectResponse("/signed-out", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    async def signed_out(request: Request) -> Response:
        return HTMLResponse(_env().get_template("message.html").render(
            title="Signed out", message="Run 'xcwl dashboard login' for a new link.", refresh=None),
            headers=SECURITY_HEADERS)

    pages_ = ("balance", "heatmap", "alerts", "operations", "overview")
    routes = [
        Route("/login/{token}", login),
        Route("/logout", logout, methods=["POST"]),
        Route("/signed-out", signed_out),
        Route("/", guarded(html)),
        *(Route(f"/{name}", guarded(html)) for name in pages_ if name != "overview"),
        Route("/pairs/{wl_a}/{wl_b}", guarded(html)),
        Route("/api/pairs/{wl_a}/{wl_b}", guarded(api)),
        Route("/api/pairs/{wl_a}/{wl_b}/{table}.csv", guarded(csv)),
        Route("/api/{page:str}", guarded(api)),
        Route("/api/{page:str}/{table}.csv", guarded(csv)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, 404, "not found")

    app = Starlette(routes=routes, exception_handlers={404: not_found})
    return app


def page_names() -> tuple[str, ...]:
    return ("overview", "balance", "heatmap", "alerts", "operations")
