"""Access to the dashboard: one-time links from an mTLS RPC, session cookies, logout, 401 / 403, scopes."""

from __future__ import annotations

import grpc
import sqlalchemy as sa

from cp_server.dashboard.access import COOKIE
from cp_server.dashboard.tables import links
from cp_server.store.schema import audit_log
from tests.cp_server.core_harness import OPS, rpc_error, running_cp
from tests.cp_server.dashboard.helpers import client, dashboard_cp, jar, login_link, open_link, session
from tests.support.pki import PkiFixture
from xporty.cp.v1 import admin_service_pb2, dashboard_service_pb2, dashboard_service_pb2_grpc
from xwl_runtime.identity import Identity


async def test_link_opens_one_session_with_strict_cookie_then_logout_ends_it(pki: PkiFixture, db_url: str) -> None:
    async with dashboard_cp(pki, db_url) as cp, client(pki, cp) as http:
        assert (await http.get("/api/overview")).status_code == 401
        assert (await http.get("/")).status_code == 401
        link = await login_link(cp, OPS)
        assert link.scope_wl == "" and link.url.startswith(f"https://127.0.0.1:{cp.app.dashboard_port}/login/")
        opened = await open_link(http, link.url)
        assert opened.status_code == 200
        cookie = opened.headers["set-cookie"]
        for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Max-Age=28800", "Path=/"):
            assert attribute in cookie
        assert opened.headers["referrer-policy"] == "no-referrer"
        value = opened.cookies[COOKIE]
        assert (await open_link(http, link.url)).status_code == 401  # used once
        api = await http.get("/api/overview", headers=jar(value))
        assert api.status_code == 200 and api.json()["page"] == "overview"
        assert api.headers["cache-control"] == "no-store"
        out = await http.post("/logout", headers=jar(value))
        assert out.status_code == 303 and 'xcwl_session=""' in out.headers["set-cookie"]
        assert (await http.get("/api/overview", headers=jar(value))).status_code == 401
        assert (await http.get("/api/overview", headers=jar("forged"))).status_code == 401
        async with cp.app.ctx.engine.connect() as conn:
            actions = list((await conn.execute(sa.select(audit_log.c.action, audit_log.c.actor)
                                                .where(audit_log.c.action.like("dashboard.%")))).all())
            stored = (await conn.execute(sa.select(links.c.token_sha256))).scalars().all()
        assert actions == [("dashboard.link", OPS.spiffe_id), ("dashboard.session", OPS.spiffe_id)]
        assert link.url.rsplit("/", 1)[1] not in stored  # only the hash is kept


async def test_expired_link_is_refused(pki: PkiFixture, db_url: str) -> None:
    import datetime as dt

    async with dashboard_cp(pki, db_url, link_ttl=dt.timedelta(seconds=0)) as cp, client(pki, cp) as http:
        link = await login_link(cp, OPS)
        assert (await open_link(http, link.url)).status_code == 401


async def test_wl_identity_sees_only_its_pairs_and_gets_403_for_others(pki: PkiFixture, db_url: str) -> None:
    async with dashboard_cp(pki, db_url) as cp, client(pki, cp) as http:
        await cp.register("wl-a", "wl-b", "wl-c")
        admin = await cp.admin()
        for a, b in (("wl-a", "wl-b"), ("wl-b", "wl-c")):
            await admin.UpdatePairPolicy(admin_service_pb2.UpdatePairPolicyRequest(
                wl_a=a, wl_b=b, imbalance_limit="1000", reason="test"), timeout=10)
        link = await login_link(cp, Identity.app("wl-a", "ops"))
        assert link.scope_wl == "wl-a"
        opened = await open_link(http, link.url)
        wl_a = jar(opened.cookies[COOKIE])
        assert (await http.get("/api/pairs/wl-b/wl-c", headers=wl_a)).status_code == 403
        assert (await http.get("/pairs/wl-b/wl-c", headers=wl_a)).status_code == 403
        assert (await http.get("/api/pairs/wl-b/wl-c/orders.csv", headers=wl_a)).status_code == 403
        assert (await http.get("/api/pairs/wl-a/wl-b", headers=wl_a)).status_code == 200
        heat = (await http.get("/api/heatmap", headers=wl_a)).json()
        assert [r[:2] for r in heat["tables"]["pairs"]["rows"]] == [["wl-a", "wl-b"]]
        ops = jar(await session(http, cp, OPS))
        heat = (await http.get("/api/heatmap", headers=ops)).json()
        assert [r[:2] for r in heat["tables"]["pairs"]["rows"]] == [["wl-a", "wl-b"], ["wl-b", "wl-c"]]
        assert (await http.get("/api/pairs/wl-a/wl-c", headers=ops)).status_code == 404
        ops_page = (await http.get("/api/operations", headers=ops)).json()
        assert ops_page["figures"]["audit_ok"] is True
        assert "audit" not in (await http.get("/api/operations", headers=wl_a)).json()["tables"]


async def test_cp_without_dashboard_refuses_links(pki: PkiFixture, db_url: str) -> None:
    async with running_cp(pki, db_url) as cp:
        stub = dashboard_service_pb2_grpc.DashboardServiceStub(await cp.channel(OPS))
        code, reason, _ = await rpc_error(stub.CreateLoginLink(dashboard_service_pb2.CreateLoginLinkRequest(),
                                                                timeout=10))
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DASHBOARD_DISABLED")
