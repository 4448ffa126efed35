"""Views of imported offers reach the CP's rollups through the operations report: counts per exporter only, sent
once after a change, nothing while idle (after the start's report of the catalog sync lag levels)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from cp_server.rollups.tables import hours, months
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory
from tests.wl_node.conftest import eventually
from tests.wl_node.operations.test_reports_and_slo import _reporter, first_report_then_quiet
from tests.wl_node.risk.harness import ready, world


async def test_offer_views_are_counted_in_the_pair_rollup_and_idle_nodes_send_nothing(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b"]) as w:
        b = await w.start_node("wl-b")
        await ready(b)
        reporter = _reporter(b)
        reporter.config = type(reporter.config)(batch_delay_s=0.1)
        await first_report_then_quiet(reporter, 0.3)
        for _ in range(3):
            reporter.viewed("wl-a")  # what GetImportedOffer does for an offer of wl-a
        await eventually(lambda: reporter.reports_sent >= 2, timeout=10)
        sent = reporter.reports_sent
        await asyncio.sleep(0.4)
        assert reporter.reports_sent == sent  # one report, then quiet
        async with w.cp.ctx.engine.connect() as conn:
            for table in (hours, months):
                row = (await conn.execute(sa.select(table.c.wl_a, table.c.wl_b, table.c.views_ab, table.c.views_ba,
                                                    table.c.checkouts_ab))).one()
                assert tuple(row) == ("wl-a", "wl-b", 3, 0, 0)  # wl-b viewed wl-a's offers: direction a→b
