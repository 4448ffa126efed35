"""A CP with its dashboard, and an HTTPS client that trusts the CP's CA (the CP's certificate names the CP's
SPIFFE identity, not 127.0.0.1, so the host name is not checked; the CA is)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from cp_server.dashboard.access import COOKIE
from cp_server.settings.dashboard import DashboardSettings
from tests.cp_server.core_harness import Cp, running_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import dashboard_service_pb2, dashboard_service_pb2_grpc
from xwl_runtime.identity import Identity

TIMEOUT = 10.0


@asynccontextmanager
async def dashboard_cp(pki: PkiFixture, db_url: str, **overrides: Any) -> AsyncIterator[Cp]:
    async with running_cp(pki, db_url, dashboard=DashboardSettings(http_listen="127.0.0.1:0", **overrides)) as cp:
        yield cp


def client(pki: PkiFixture, cp: Cp) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(pki.dir.ca_cert))
    ctx.check_hostname = False
    return httpx.AsyncClient(base_url=base_url(cp), verify=ctx, timeout=TIMEOUT, follow_redirects=False)


async def open_link(http: httpx.AsyncClient, url: str) -> httpx.Response:
    """GET a login link; the client keeps no cookie (each request says which session it uses: ``jar``)."""
    resp = await http.get(url)
    http.cookies.clear()
    return resp


def jar(session_value: str) -> dict[str, str]:
    """Headers that present one session cookie."""
    return {"cookie": f"{COOKIE}={session_value}"}


def base_url(cp: Cp) -> str:
    return f"https://127.0.0.1:{cp.app.dashboard_port}"


async def login_link(cp: Cp, identity: Identity) -> dashboard_service_pb2.CreateLoginLinkResponse:
    stub = dashboard_service_pb2_grpc.DashboardServiceStub(await cp.channel(identity))
    return await stub.CreateLoginLink(dashboard_service_pb2.CreateLoginLinkRequest(), timeout=TIMEOUT)


async def session(http: httpx.AsyncClient, cp: Cp, identity: Identity) -> str:
    """Open a link of ``identity``; returns the session cookie's value."""
    link = await login_link(cp, identity)
    resp = await open_link(http, link.url)
    assert resp.status_code == 200, resp.text
    return str(resp.cookies[COOKIE])
