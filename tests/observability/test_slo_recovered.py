"""An SLO figure back on target after a breach queues one ``slo.recovered`` through the webhook outbox, delivered
signed to a real HTTP receiver; two CP replicas judging the same recovery queue it once; silence (no data) neither
closes nor reopens a breach."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal

import sqlalchemy as sa

from cp_server.settings.webhooks import WebhookConfig
from cp_server.slo.breaches import SloBreaches
from cp_server.slo.report import CONFIRMATION_P99_S, Figure
from cp_server.slo.tables import breaches
from cp_server.webhooks.outbox import WebhookOutbox
from cp_server.webhooks.signature import new_secret
from cp_server.webhooks.tables import deliveries, endpoints
from tests.cp_server.risk.harness import migrate
from tests.support.eventually import eventually
from tests.support.webhook_receiver import serve_receiver
from xwl_runtime import db
from xwl_runtime.clock import SystemClock

WINDOW = dt.timedelta(minutes=15)
PAIR = "wl-b/wl-a"


def _p99(value: str | None, samples: int = 40, scope: str = PAIR) -> Figure:
    return Figure("confirmation_p99", scope, None if value is None else Decimal(value), CONFIRMATION_P99_S, "s",
                  samples)


async def test_a_breach_back_on_target_is_delivered_once_as_slo_recovered(db_url: str) -> None:
    await asyncio.to_thread(migrate, db_url)
    engine = db.create_engine(db_url)
    clock = SystemClock()
    outbox = WebhookOutbox(engine, clock, WebhookConfig(base_backoff_s=0.05, max_backoff_s=0.2, timeout_s=2.0))
    # Two replicas of the evaluator over one database, queueing through the same outbox table.
    replicas = [SloBreaches(engine, outbox.enqueue, min_samples=20) for _ in range(2)]
    stop = asyncio.Event()
    loop = asyncio.create_task(outbox.run(stop))
    try:
        async with serve_receiver() as (receiver, url):
            receiver.fail_first = False
            receiver.secret = new_secret()
            async with engine.begin() as conn:
                await conn.execute(endpoints.insert().values(
                    webhook_id="wh_1", url=url, event_types=json.dumps(["slo.breach", "slo.recovered"]),
                    secret=receiver.secret, created_at=clock.now()))

            t0 = clock.now()
            opened = await replicas[0].judge([_p99("1.000")], WINDOW, t0)
            assert [f.scope for f in opened] == [PAIR]
            await eventually(lambda: len(receiver.accepted) == 1, timeout=10)

            # No data, or too few order attempts: the breach stays open and nothing is queued.
            assert await replicas[0].judge([_p99(None, 0), _p99("0.025", samples=3)], WINDOW, t0) == []

            # Back on target: both replicas see the open breach and judge the recovery at the same time.
            t1 = t0 + dt.timedelta(minutes=7)
            await asyncio.gather(*(r.judge([_p99("0.250")], WINDOW, t1) for r in replicas))
            await eventually(lambda: len(receiver.accepted) == 2, timeout=10)
            await asyncio.sleep(0.3)
            # The same figure on target again: nothing more.
            await replicas[1].judge([_p99("0.100")], WINDOW, t1 + dt.timedelta(seconds=30))
            await asyncio.sleep(0.3)

            assert [e["type"] for e in receiver.accepted] == ["slo.breach", "slo.recovered"]
            assert receiver.refused == []  # each delivery's signature verified
            recovered = receiver.accepted[1]["data"]
            assert (recovered["figure"], recovered["scope"]) == ("confirmation_p99", PAIR)
            assert (Decimal(recovered["value"]), Decimal(recovered["target"])) == (Decimal("0.25"), Decimal("0.5"))
            assert Decimal(recovered["breach_value"]) == Decimal("1")
            assert dt.datetime.fromisoformat(recovered["opened_at"]) == t0
            assert dt.datetime.fromisoformat(recovered["recovered_at"]) == t1
            assert (recovered["samples"], recovered["window_seconds"]) == (40, 900)

            # A new breach of the same figure is a new event.
            assert await replicas[1].judge([_p99("2.500")], WINDOW, t1 + dt.timedelta(minutes=1))
            await eventually(lambda: len(receiver.accepted) == 3, timeout=10)
            assert receiver.accepted[2]["type"] == "slo.breach"
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(breaches.c.open, breaches.c.closed_at))).all()
            queued = (await conn.execute(sa.select(deliveries.c.event_type).order_by(deliveries.c.created_at)))
            types = sorted(queued.scalars())
        assert [r.open for r in rows] == [True]
        assert types == ["slo.breach", "slo.breach", "slo.recovered"]
    finally:
        stop.set()
        await loop
        await engine.dispose()
