"""Node reports are stored in group commits: a burst of reports costs a few transactions, none is lost."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import event

from cp_server.app import MIGRATIONS_DIR, VERSION_TABLE
from cp_server.store.node_status import NodeReport, NodeStatusStore
from xwl_runtime import db


def _report(n: int, version: int) -> NodeReport:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=version)
    return NodeReport(wl_id=f"wl-{n:02d}", applied_version=version, rejected_version=0, last_error="",
                      apply_time=now, report_time=now)


async def test_burst_of_reports_is_grouped_and_latest_wins(db_url: str) -> None:
    await asyncio.to_thread(db.upgrade, db_url, MIGRATIONS_DIR, version_table=VERSION_TABLE)
    engine = db.create_engine(db_url)
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda conn: commits.append(1))
    store = NodeStatusStore(engine)
    try:
        await asyncio.gather(*(store.report(_report(n, 1)) for n in range(40)))
        assert len(commits) <= 3, "reports were not grouped"
        await asyncio.gather(*(store.report(_report(n % 5, v)) for v in (2, 3) for n in range(5)))
        stored = await store.all()
        assert len(stored) == 40
        assert {stored[f"wl-{n:02d}"].applied_version for n in range(5)} == {3}
        assert stored["wl-39"].applied_version == 1 and stored["wl-39"].apply_time == _report(39, 1).apply_time
    finally:
        await store.close()
        await engine.dispose()
