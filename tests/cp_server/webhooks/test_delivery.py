"""Operator webhooks against a real HTTP receiver: signed deliveries, replay and tampering refused by the
receiver, a retry after a 500, the dead letter, and the 80% alert delivered from the alert's own transaction."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from cp_server.authz import TABLE as CP_AUTHZ
from cp_server.webhooks import component as webhooks_component
from cp_server.webhooks import signature
from cp_server.webhooks.settings import WebhookConfig
from cp_server.webhooks.tables import deliveries, endpoints
from tests.cp_server.risk.harness import KIND, RiskCp, running_risk_cp
from tests.support.eventually import eventually
from tests.support.pki import PkiFixture
from xporty.cp.v1 import webhook_service_pb2 as pb
from xporty.cp.v1 import webhook_service_pb2_grpc as pb_grpc
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.server import Listener, start_server
from xwl_runtime.tls import ReloadableServerCredentials, secure_channel

FAST = WebhookConfig(max_attempts=3, base_backoff_s=0.05, max_backoff_s=0.2, timeout_s=2.0, scan_interval_s=0.1)


@dataclass
class Receiver:
    """A real HTTP endpoint that verifies every delivery like an operator's would."""

    secret: str = ""
    fail_first: bool = True
    always_fail: bool = False
    accepted: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    raw: list[tuple[str, bytes]] = field(default_factory=list)
    clock_skew_s: float = 0.0

    def handle(self, header: str | None, delivery: str, body: bytes) -> int:
        try:
            signature.verify(header, body, self.secret, now=time.time() + self.clock_skew_s)
        except signature.SignatureError as err:
            self.refused.append(str(err))
            return 400
        self.raw.append((header or "", body))
        self.attempts[delivery] = self.attempts.get(delivery, 0) + 1
        if self.always_fail or (self.fail_first and self.attempts[delivery] == 1):
            return 500
        self.accepted.append(json.loads(body))
        return 200


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(state.handle(self.headers.get(signature.HEADER), self.headers.get("X-Xcwl-Delivery", ""),
                                            body))
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_port}/hooks"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Cp:
    risk: RiskCp
    stub: pb_grpc.WebhookServiceStub


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[Cp]:
    async with running_risk_cp(pki, db_url) as risk:
        await risk.seed({"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "1")}, [("wl-a", "wl-b", "100")])
        hooks = webhooks_component.install(risk.ctx, FAST)
        risk.parts.store.add_insert_hook(hooks.on_signal)
        material = pki.material(Identity.cp())
        server = await start_server(
            registrations=hooks.component.registrations, service_names=hooks.component.service_names,
            listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(material).credentials)],
            authz_table=CP_AUTHZ)
        stop = asyncio.Event()
        loop = asyncio.create_task(hooks.outbox.run(stop))
        channel = secure_channel(f"127.0.0.1:{server.port}", pki.material(Identity.ops("alice")),
                                 expected=Identity.cp())
        try:
            yield Cp(risk, pb_grpc.WebhookServiceStub(channel))
        finally:
            stop.set()
            await loop
            await channel.close()
            await server.stop(0)


def _post(url: str, header: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={signature.HEADER: header})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback receiver
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


async def test_signed_delivery_retried_after_500_and_replay_or_tamper_refused(
    cp: Cp, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    added = await cp.stub.AddWebhook(pb.AddWebhookRequest(url=url), timeout=5)
    state.secret = added.secret
    assert added.secret.startswith("whsec_")
    delivery = (await cp.stub.TestWebhook(pb.TestWebhookRequest(webhook_id=added.webhook.webhook_id),
                                          timeout=5)).delivery_id
    await eventually(lambda: len(state.accepted) == 1, timeout=10.0)
    assert state.attempts[delivery] == 2  # the first answer was 500: retried, then accepted
    assert state.accepted[0]["type"] == "webhook.test" and state.refused == []
    listed = (await cp.stub.ListWebhooks(pb.ListWebhooksRequest(), timeout=5)).webhooks
    assert [(w.delivered, w.pending, w.dead) for w in listed] == [(1, 0, 0)]

    # The receiver refuses a replay (same signed bytes, outside its tolerance window) and a tampered body.
    header, body = state.raw[-1]
    state.clock_skew_s = signature.DEFAULT_TOLERANCE_S + 5
    assert await asyncio.to_thread(_post, url, header, body) == 400
    state.clock_skew_s = 0.0
    assert await asyncio.to_thread(_post, url, header, body.replace(b"webhook.test", b"webhook.tesT")) == 400
    assert await asyncio.to_thread(_post, url, header + "0", body) == 400
    assert len(state.refused) == 3 and len(state.accepted) == 1


async def test_the_80_percent_alert_is_delivered_and_a_dead_endpoint_goes_to_the_dead_letter(
    cp: Cp, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    state.fail_first = False
    good = await cp.stub.AddWebhook(pb.AddWebhookRequest(url=url, event_types=["alert.raised"]), timeout=5)
    state.secret = good.secret
    dead = await cp.stub.AddWebhook(pb.AddWebhookRequest(url="http://127.0.0.1:9/nothing-listens"), timeout=5)
    a = cp.risk.node("wl-a")  # its honest importer wl-b finalizes the sale at once
    confirmed = a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="o1", exporter="wl-a", importer="wl-b",
                        amount="85", currency="XPY-A", correlation_id="cid-alert")
    assert (await a.publish(confirmed)).accepted == 1
    await eventually(lambda: len(state.accepted) == 1, timeout=10.0)
    event = state.accepted[0]
    assert event["type"] == "alert.raised"
    assert event["data"]["correlation_id"] == "cid-alert"
    assert (event["data"]["exporter_wl"], event["data"]["importer_wl"]) == ("wl-a", "wl-b")

    async def dead_lettered() -> bool:
        async with cp.risk.engine.connect() as conn:
            rows = (await conn.execute(sa.select(deliveries.c.state, deliveries.c.attempts).where(
                deliveries.c.webhook_id == dead.webhook.webhook_id))).all()
        return bool(rows) and all(r.state == "DEAD" and r.attempts == FAST.max_attempts for r in rows)

    deadline = time.monotonic() + 15
    while not await dead_lettered():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    listed = {w.webhook_id: w for w in (await cp.stub.ListWebhooks(pb.ListWebhooksRequest(), timeout=5)).webhooks}
    assert listed[dead.webhook.webhook_id].dead >= 1 and listed[dead.webhook.webhook_id].pending == 0


async def test_bad_urls_and_unknown_types_are_refused_and_nothing_is_stored(cp: Cp) -> None:
    for request, field_name in ((pb.AddWebhookRequest(url="file:///etc/passwd"), "url"),
                                (pb.AddWebhookRequest(url="http://x.example/" + "a" * 3000), "url"),
                                (pb.AddWebhookRequest(url="https://x.example/h", event_types=["nope"]), "event_types")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await cp.stub.AddWebhook(request, timeout=5)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        remote = decode_rpc_error(err.value)
        assert remote.reason == "INVALID_ARGUMENT" and field_name in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cp.stub.TestWebhook(pb.TestWebhookRequest(webhook_id="wh_missing"), timeout=5)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND and decode_rpc_error(err.value).reason == "WEBHOOK_NOT_FOUND"
    async with cp.risk.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(endpoints))).scalar_one() == 0
        assert (await conn.execute(sa.select(sa.func.count()).select_from(deliveries))).scalar_one() == 0
