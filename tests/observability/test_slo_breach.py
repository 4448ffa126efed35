"""An exporter slowed past 500 ms in the real node: ``xcwl report slo`` shows the confirmation p99 in BREACH (pair
and global) and the CP's SLO evaluator delivers one ``slo.breach`` per figure to a real, verifying HTTP receiver.

A real CP and real nodes; the importer's operational reports (``ReportOperations``) carry the latency to the CP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cp_server.settings.rollout import RolloutConfig
from tests.support.pki import PkiFixture
from tests.support.webhook_receiver import serve_receiver
from tests.wl_node.catalog.helpers import db_factory
from tests.wl_node.conftest import eventually
from tests.wl_node.rollout.helpers import RPC
from tests.wl_node.rollout.test_pilot_caps import _checkout
from tests.wl_node.test_cross_wl_trade import EXPORTER, _publish, _ready_to_buy, world
from tests.xcwl.test_trade_commands import ops, run
from wl_node.orders.desk import OrderDesk
from xporty.cp.v1 import webhook_service_pb2, webhook_service_pb2_grpc
from xporty.node.v1 import storefront_pb2
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

pytestmark = pytest.mark.timeout(180)

FAST_JUDGE = RolloutConfig(hold_check_interval=dt.timedelta(seconds=0.2), hold_min_samples=5)
SLOW_S = 0.7
PAIR = f"wl-b/{EXPORTER}"


async def test_a_slowed_exporter_shows_breach_in_report_slo_and_the_breach_is_delivered_once(
    tmp_path: Path, pki: PkiFixture, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with db_factory("sqlite", tmp_path) as dbs:
        async with world(tmp_path, pki, dbs, ["wl-b"], cp_settings={"rollout": FAST_JUDGE}) as w, \
                serve_receiver() as (receiver, url):
            receiver.fail_first = False
            async with secure_channel(f"127.0.0.1:{w.cp.port}", w.pki.material(Identity.ops("tester")),
                                      expected=Identity.cp()) as channel:
                added = await webhook_service_pb2_grpc.WebhookServiceStub(channel).AddWebhook(
                    webhook_service_pb2.AddWebhookRequest(url=url, event_types=["slo.breach"]), timeout=RPC)
            receiver.secret = added.secret
            await _publish(w, "o-1", "10.00", 1000)
            await _ready_to_buy(w, "wl-b", f"{EXPORTER}:o-1")

            # The exporter's PlaceOrder takes longer than the 500 ms target.
            original = OrderDesk.place

            async def slow(self: OrderDesk, *args: Any, **kwargs: Any) -> Any:
                await asyncio.sleep(SLOW_S)
                return await original(self, *args, **kwargs)

            monkeypatch.setattr(OrderDesk, "place", slow)
            outcomes = await asyncio.gather(*(_checkout(w, "wl-b", f"slow-{i}", f"m-{i}") for i in range(8)))
            assert all(isinstance(o, storefront_pb2.Checkout) and o.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED
                       for o in outcomes), [o if not isinstance(o, storefront_pb2.Checkout) else
                                            (storefront_pb2.CheckoutStatus.Name(o.status), o.reason)
                                            for o in outcomes]

            # The importer reports within ~5 s; the evaluator judges every 0.2 s and opens each breach once.
            await eventually(lambda: {(e["data"]["figure"], e["data"]["scope"]) for e in receiver.accepted}
                             >= {("confirmation_p99", "global"), ("confirmation_p99", PAIR)}, timeout=30)
            for event in receiver.accepted:
                data = event["data"]
                assert event["type"] == "slo.breach" and data["figure"] == "confirmation_p99"
                assert Decimal(data["value"]) > Decimal("0.5") and Decimal(data["target"]) == Decimal("0.5")
                assert data["samples"] >= 8 and data["window_seconds"] == 900
            assert receiver.refused == []  # every delivery's signature verified
            await asyncio.sleep(1.0)  # five more judgements of the same breach: nothing new
            assert len(receiver.accepted) == 2

            # What the operator sees.
            w.pki.material(Identity.ops("alice"))  # the operator certificate ``ops(w)`` names
            code, out, err = await run(capsys, "report", "slo", *ops(w), "--window", "15m", "--json")
            assert code == 0, err
            figures = {(f["name"], f["scope"]): f for f in json.loads(out)["figures"]}
            for scope in ("global", PAIR):
                p99 = figures[("confirmation_p99", scope)]
                assert p99["status"] == "BREACH" and Decimal(p99["value"]) > Decimal("0.5"), p99
            assert figures[("error_rate", PAIR)]["status"] == "OK"
            code, out, _ = await run(capsys, "report", "slo", *ops(w))
            assert code == 0
            line = next(x for x in out.splitlines() if "confirmation_p99" in x and PAIR in x)
            assert "BREACH" in line and "0.5 s" in line
            print(line)
