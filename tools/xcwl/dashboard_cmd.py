"""``xcwl dashboard login``: a one-time link to the CP's web dashboard; ``xcwl dashboard screenshots``: one PNG per
page after a scripted trade scenario (``dashboard_scenario``), for the docs.

``login`` authenticates with the operator's certificate (``--as NAME``), or any certificate given with
``--cert/--key`` (a WL's app certificate opens a session limited to that WL's pairs). The link works once, within
the CP's ``dashboard.link_ttl`` (5 minutes by default).

``screenshots`` starts its own CP (temporary PKI and SQLite store), runs the scenario and drives the system
Chromium (``--chromium``, default /usr/bin/chromium) headless through Playwright; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from .errors import CliError
from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit

CHROMIUM = "/usr/bin/chromium"
SHOTS = (("overview", "/"), ("balance", "/balance"), ("pair", "/pairs/wl-a/wl-b"), ("heatmap", "/heatmap"),
         ("alerts", "/alerts"), ("operations", "/operations"))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dash = sub.add_parser("dashboard", help="the CP's web dashboard: login links, screenshots")
    d_sub = dash.add_subparsers(dest="dashboard_cmd", required=True)
    login = d_sub.add_parser("login", help="print a one-time link that opens a dashboard session")
    add_ops_flags(login)
    login.set_defaults(func=ops_command(_login))
    shots = d_sub.add_parser("screenshots", help="write one PNG per dashboard page after a scripted scenario")
    shots.add_argument("--out", default="docs/screenshots", help="directory for the PNG files")
    shots.add_argument("--chromium", default=CHROMIUM, help="the Chromium executable to drive")
    shots.set_defaults(func=_screenshots)


async def _login(args: argparse.Namespace, client: OpsClient) -> int:
    link = await client.login_link()
    expires = link.expire_time.ToDatetime().isoformat(timespec="seconds")
    scope = f"limited to {link.scope_wl}" if link.scope_wl else "every WL"
    emit(args.json, {"url": link.url, "expire_time": expires + "Z", "scope_wl": link.scope_wl},
         f"{link.url}\n(one use, before {expires} UTC; {scope})")
    return 0


async def take_screenshots(out: Path, chromium: str) -> list[Path]:
    """Run the scenario and save one full-page PNG per page; returns the files."""
    from playwright.async_api import async_playwright

    from .dashboard_scenario import running_scenario

    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="xcwl-shots-") as tmp:
        async with running_scenario(Path(tmp)) as scenario, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = await (await browser.new_context(ignore_https_errors=True,
                                                        viewport={"width": 1280, "height": 800})).new_page()
                await page.goto(await scenario.link())
                await page.wait_for_url(f"{scenario.base_url}/")
                for name, path in SHOTS:
                    await page.goto(scenario.base_url + path)
                    target = out / f"{name}.png"
                    await page.screenshot(path=str(target), full_page=True)
                    written.append(target)
            finally:
                await browser.close()
    return written


def _screenshots(args: argparse.Namespace) -> int:
    if not Path(args.chromium).exists():
        raise CliError(f"--chromium: {args.chromium} not found (install the Debian package 'chromium')")
    for path in asyncio.run(take_screenshots(Path(args.out), args.chromium)):
        print(path)
    return 0
