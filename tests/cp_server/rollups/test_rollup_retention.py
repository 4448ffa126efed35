"""Retention of the rollups: the dashboard's pruning deletes the hourly and monthly rows whose whole bucket is older
than ``dashboard.hour_retention`` / ``dashboard.month_retention`` and keeps the newer ones, and the current KPIs
(this month's GMV, conversion, the overview's figures) are the same before and after, even with a retention shorter
than a month; the retention is set from the CP's configuration."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from cp_server.dashboard import pages
from cp_server.dashboard.access import Access, Principal
from cp_server.dashboard.component import prune
from cp_server.rollups import kpis
from cp_server.rollups import tables as t
from cp_server.settings import CpSettings
from cp_server.settings.dashboard import DashboardSettings
from cp_server.slo.store import LATENCY_BOUNDS_S, OperationsStore
from tests.cp_server.risk.harness import KIND, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xcwl.config_file import build
from xporty.cp.v1 import operations_pb2, telemetry_service_pb2
from xwl_runtime.clock import ManualClock

WLS = {"wl-a": ("XPY-A", "0.5"), "wl-b": ("XPY-B", "1")}
START = dt.datetime(2026, 1, 10, 12, 30, tzinfo=dt.UTC)
RETENTION = DashboardSettings(hour_retention=dt.timedelta(days=1), month_retention=dt.timedelta(days=5))
OPS = Principal("spiffe://xporty/ops/test", None)


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[RiskCp]:
    async with running_risk_cp(pki, db_url, run_loops=False, clock=ManualClock(START)) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "1000000")])
        yield cp


async def _sale(cp: RiskCp, order_id: str, amount: str) -> None:
    """wl-a exports ``amount`` XPY-A to wl-b; the honest importer finalizes, so the order counts now."""
    a = cp.node("wl-a")
    event = a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id=order_id, exporter="wl-a", importer="wl-b",
                    amount=amount, currency="XPY-A")
    assert (await a.publish(event)).accepted == 1


async def _views(cp: RiskCp, views: int, checkouts: int, at: dt.datetime) -> None:
    counts = [0] * (len(LATENCY_BOUNDS_S) + 1)
    await OperationsStore(cp.engine).ingest("wl-b", telemetry_service_pb2.ReportOperationsRequest(peers=[
        operations_pb2.PeerOperations(exporter_wl="wl-a", offer_views=views, attempts=checkouts,
                                      confirmation=operations_pb2.LatencyHistogram(bounds_seconds=LATENCY_BOUNDS_S,
                                                                                   counts=counts))]), at)


async def _buckets(cp: RiskCp) -> tuple[list[dt.datetime], list[dt.datetime]]:
    async with cp.engine.connect() as conn:
        hours = list((await conn.execute(sa.select(t.hours.c.hour).order_by(t.hours.c.hour))).scalars())
        months = list((await conn.execute(sa.select(t.months.c.month).order_by(t.months.c.month))).scalars())
    return hours, months


async def _current(cp: RiskCp, now: dt.datetime) -> tuple[kpis.MonthKpis, dict[str, object]]:
    async with cp.engine.connect() as conn:
        this = next(m for m in await kpis.months(conn) if m.month == dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
        overview = await pages.overview(conn, OPS, now, None)
    return this, overview.figures


async def test_pruning_deletes_rows_past_retention_keeps_newer_and_the_current_kpis(cp: RiskCp) -> None:
    clock = cp.ctx.clock
    assert isinstance(clock, ManualClock)
    await _sale(cp, "o-jan", "100.00")  # 2026-01-10 12:xx: January's month row, an hour row
    clock.advance(31 * 86400)  # 2026-02-10 12:30
    await _sale(cp, "o-feb-1", "40.00")
    await _views(cp, 10, 3, clock.now())
    clock.advance(22 * 3600)  # 2026-02-11 10:30
    await _sale(cp, "o-feb-2", "60.00")
    await _views(cp, 5, 2, clock.now())
    clock.advance(int(2.5 * 3600))  # 2026-02-11 13:00: hour cutoff 02-10 13:00, month cutoff 02-06 13:00
    now = clock.now()
    jan, feb = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    old_hours = [dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC), dt.datetime(2026, 2, 10, 12, tzinfo=dt.UTC)]
    kept_hour = dt.datetime(2026, 2, 11, 10, tzinfo=dt.UTC)
    assert await _buckets(cp) == ([*old_hours, kept_hour], [jan, feb])
    assert old_hours[-1] < now - RETENTION.hour_retention < kept_hour
    assert feb < now - RETENTION.month_retention  # a retention shorter than the current month
    before = await _current(cp, now)
    this, figures = before
    assert (this.gmv, this.completed, this.views, this.checkouts) == (50, 2, 15, 5)
    assert Decimal(str(figures["gmv_this_month"])) == 50 and figures["conversion_this_month"] == "0.1333"

    month_long = DashboardSettings(hour_retention=RETENTION.hour_retention, month_retention=dt.timedelta(days=30))
    await prune(cp.ctx, month_long, Access(cp.engine, cp.audit, clock, month_long), now)
    assert await _buckets(cp) == ([kept_hour], [jan, feb])  # January ended 11 days ago, less than 30
    assert await _current(cp, now) == before

    await prune(cp.ctx, RETENTION, Access(cp.engine, cp.audit, clock, RETENTION), now)

    assert await _buckets(cp) == ([kept_hour], [feb])
    assert await _current(cp, now) == before
    async with cp.engine.connect() as conn:  # the kept rows are untouched: this month's row still sums both sales
        row = (await conn.execute(sa.select(t.months).where(t.months.c.month == feb))).one()
    assert (row.exports_ab, row.amount_ab, row.orders_ab, row.views_ab, row.checkouts_ab) == (
        Decimal(50), Decimal(100), 2, 15, 5)

    await prune(cp.ctx, DashboardSettings(), Access(cp.engine, cp.audit, clock, DashboardSettings()), now)
    assert await _buckets(cp) == ([kept_hour], [feb])  # the defaults (90 days, 1,100 days) keep them


def test_retention_is_read_from_the_configuration() -> None:
    settings = build(CpSettings, {"db_url": "sqlite:///cp.db", "pki_dir": "pki",
                                  "dashboard": {"hour_retention": "36h", "month_retention": "400d"}})
    assert settings.dashboard.hour_retention == dt.timedelta(hours=36)
    assert settings.dashboard.month_retention == dt.timedelta(days=400)
    assert CpSettings(db_url="sqlite:///cp.db", pki_dir="pki").dashboard == DashboardSettings()
