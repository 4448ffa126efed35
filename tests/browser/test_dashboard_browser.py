"""The dashboard in a real browser: headless Chromium (the Debian package, driven by Playwright; nothing is
downloaded) against a live CP after the scripted trade scenario (``xcwl.dashboard_scenario``).

Numbers are read off the rendered pages and compared with the ledger (sums of the scenario's trade, and the CP's
balances) and with the JSON API; CSV downloads are compared with the API; a WL's identity is refused another
pair; no page shows a manager contact.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cp_server.risk.recompute import recompute
from xcwl.dashboard_scenario import MANAGER_CONTACT, Scenario, running_scenario
from xwl_runtime.identity import Identity

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="the Debian package chromium is not installed")
PAGES = ("/", "/balance", "/heatmap", "/alerts", "/operations", "/pairs/wl-a/wl-b", "/pairs/wl-a/wl-c")

playwright = pytest.importorskip("playwright.async_api")


@pytest.fixture
async def scenario(tmp_path: Path, db_url: str) -> AsyncIterator[Scenario]:
    async with running_scenario(tmp_path, db_url) as s:
        yield s


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


async def _signed_in(browser: Any, s: Scenario, identity: Identity | None = None) -> Any:
    context = await browser.new_context(ignore_https_errors=True, accept_downloads=True)
    page = await context.new_page()
    await page.goto(await (s.link(identity) if identity else s.link()))
    await page.wait_for_url(f"{s.base_url}/")
    return page


async def _api(page: Any, path: str) -> tuple[int, Any]:
    resp = await page.request.get(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + path)
    return resp.status, (await resp.json() if resp.ok else None)


async def test_pages_show_the_ledger_and_match_api_and_csv(scenario: Scenario, browser: Any) -> None:
    page = await _signed_in(browser, scenario)
    # Overview: GMV this month = every order the scenario traded (both sides agreed), in the reference unit.
    gmv = sum((Scenario.expected_value(e, i) for e, i in (("wl-a", "wl-b"), ("wl-b", "wl-a"), ("wl-c", "wl-a"))),
              Decimal(0))
    assert Decimal(await page.inner_text("#fig-gmv_this_month .value")) == gmv == Decimal(1180)
    assert await page.inner_text("#fig-conversion_this_month .value") == "0.3250"  # 13 completed / 40 views
    assert await page.inner_text("#fig-funnel .value") == "40 → 10 → 13"
    assert await page.inner_text("#fig-open_alerts .value") == "1"

    # Balance of trade: each pair's exports and net equal the CP's balances recomputed from the stored events.
    await page.goto(scenario.base_url + "/balance")
    ledger = await recompute(scenario.app.ctx.engine)
    rows = await page.locator("#table-pairs tbody tr").all()
    shown = {}
    for row in rows:
        cells = [c.strip() for c in await row.locator("td").all_inner_texts()]
        shown[(cells[0], cells[1])] = cells
    for (a, b), balance in ledger.items():
        cells = shown[(a, b)]
        assert (Decimal(cells[2]), Decimal(cells[3]), Decimal(cells[4])) == (
            balance.exports_ab, balance.exports_ba, balance.net)
    assert Decimal(shown[("wl-a", "wl-b")][4]) == Decimal(800)  # 840 - 40

    # Heatmap: the driven pair's cell shows its utilisation (800 / 1000); the paused pair is marked.
    await page.goto(scenario.base_url + "/heatmap")
    cell = page.locator('td[data-pair="wl-a/wl-b"]').first
    assert await cell.get_attribute("data-utilisation") == "0.8000"
    assert (await cell.inner_text()).strip() == "80%"
    assert "paused" in (await page.locator('td[data-pair="wl-b/wl-c"]').first.get_attribute("class") or "")

    # Drill-down by click: the cell opens the pair, with its recent orders.
    await cell.locator("a").click()
    await page.wait_for_url(f"{scenario.base_url}/pairs/wl-a/wl-b")
    assert await page.inner_text("#fig-utilisation .value") == "0.8000"
    assert await page.locator("#table-orders tbody tr").count() == 10

    # The alert appears, with the correlation id of the event that crossed 80%.
    await page.goto(scenario.base_url + "/alerts")
    alert_rows = [r for r in await page.locator("#table-alerts tbody tr").all_inner_texts() if "\tALERT\t" in r]
    assert len(alert_rows) == 1 and "wl-a/wl-b" in alert_rows[0] and "cid-wl-a-wl-b-" in alert_rows[0]

    # CSV downloads equal the API, table by table.
    for path, table in (("/api/overview", "gmv_by_month"), ("/api/balance", "pairs"), ("/api/heatmap", "pairs"),
                        ("/api/pairs/wl-a/wl-b", "orders"), ("/api/alerts", "alerts")):
        status, data = await _api(page, path)
        assert status == 200
        await page.goto(scenario.base_url + ("/" if path == "/api/overview" else path.replace("/api", "")))
        async with page.expect_download() as info:
            await page.locator(f'a.csv[href="{path}/{table}.csv"]').click()
        download = await info.value
        text = await asyncio.to_thread(Path(await download.path()).read_text)
        got = list(csv.reader(io.StringIO(text)))
        want = [data["tables"][table]["columns"],
                *[["" if v is None else str(v) for v in row] for row in data["tables"][table]["rows"]]]
        # The trend is measured up to "now": it moves between two reads; every other column must be equal.
        keep = [i for i, c in enumerate(want[0]) if c not in ("trend_per_hour", "time_to_limit_s")]
        assert [[r[i] for i in keep] for r in got] == [[str(r[i]) for i in keep] for r in want], path

    # No manager contact anywhere (pages and their JSON).
    for path in PAGES:
        await page.goto(scenario.base_url + path)
        content = await page.content()
        _, data = await _api(page, "/api" + ("/overview" if path == "/" else path))
        for secret in MANAGER_CONTACT:
            assert secret not in content and secret not in json.dumps(data)


async def test_wl_operator_sees_its_pairs_and_is_refused_another(scenario: Scenario, browser: Any) -> None:
    page = await _signed_in(browser, scenario, Identity.app("wl-a", "ops"))
    resp = await page.goto(scenario.base_url + "/pairs/wl-b/wl-c")
    assert resp.status == 403
    status, _ = await _api(page, "/api/pairs/wl-b/wl-c")
    assert status == 403
    resp = await page.goto(scenario.base_url + "/pairs/wl-a/wl-b")
    assert resp.status == 200
    await page.goto(scenario.base_url + "/heatmap")
    assert await page.locator('td[data-pair="wl-b/wl-c"]').count() == 0
    await page.locator("header button").click()  # log out
    await page.wait_for_url(f"{scenario.base_url}/signed-out")
    resp = await page.goto(scenario.base_url + "/")
    assert resp.status == 401
