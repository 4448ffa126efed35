"""Operator webhooks against a real HTTP receiver: signed deliveries, replay and tampering refused by the
receiver, a retry after a 500, the dead letter, and the 80% alert delivered from the alert's own transaction."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from cp_server.authz import TABLE as CP_AUTHZ
from cp_server.settings.webhooks import WebhookConfig
from cp_server.webhooks import component as webhooks_component
from cp_server.webhooks import signature
from cp_server.webhooks.outbox import WebhookOutbox
from cp_server.webhooks.tables import deliveries, endpoints
from tests.cp_server.risk.harness import KIND, RiskCp, running_risk_cp
from tests.support.eventually import eventually
from tests.support.pki import PkiFixture
from tests.support.webhook_receiver import Receiver, serve_receiver
from xporty.cp.v1 import webhook_service_pb2 as pb
from xporty.cp.v1 import webhook_service_pb2_grpc as pb_grpc
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.server import Listener, start_server
from xwl_runtime.tls import ReloadableServerCredentials, secure_channel

FAST = WebhookConfig(max_attempts=3, base_backoff_s=0.05, max_backoff_s=0.2, timeout_s=2.0)
"""Fast retries; the default 60 s safety re-check, so every delivery in these tests is driven by a wake-up or by its
retry falling due, never by a scan."""


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    async with serve_receiver() as served:
        yield served


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
        risk.parts.reconciler.on_discrepancy = hooks.on_discrepancy
        material = pki.material(Identity.cp())
        server = await start_server(
            registrations=hooks.component.registrations, service_names=hooks.component.service_names,
            listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(material).credentials)],
            authz_table=CP_AUTHZ)
        stop = asyncio.Event()
        loops = [asyncio.create_task(run(stop)) for run in hooks.component.loops]  # + the LISTEN loop on PostgreSQL
        channel = secure_channel(f"127.0.0.1:{server.port}", pki.material(Identity.ops("alice")),
                                 expected=Identity.cp())
        try:
            yield Cp(risk, pb_grpc.WebhookServiceStub(channel))
        finally:
            stop.set()
            await asyncio.gather(*loops)
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
    deadline = time.monotonic() + 5  # the receiver answers before the outbox records the delivery
    while True:
        listed = (await cp.stub.ListWebhooks(pb.ListWebhooksRequest(), timeout=5)).webhooks
        if [(w.delivered, w.pending, w.dead) for w in listed] == [(1, 0, 0)] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
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


async def test_a_discrepancy_is_delivered_once_from_the_transaction_that_alerts_on_it(
    cp: Cp, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    state.fail_first = False
    added = await cp.stub.AddWebhook(pb.AddWebhookRequest(url=url, event_types=["discrepancy.opened"]), timeout=5)
    state.secret = added.secret
    a, b = cp.risk.node("wl-a"), cp.risk.node("wl-b")
    a.honest_importer = False  # the importer reports its own (different) amount
    exported = a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="o-d", exporter="wl-a", importer="wl-b",
                       amount="50", currency="XPY-A", correlation_id="cid-disc")
    finalized = b.event(KIND.LEDGER_EVENT_KIND_IMPORT_FINALIZED, order_id="o-d", exporter="wl-a", importer="wl-b",
                        amount="40", currency="XPY-A", correlation_id="cid-disc")
    assert (await a.publish(exported)).accepted == 1
    assert (await b.publish(finalized)).accepted == 1
    # Two passes at once (the loop's and this one, like two CP replicas): the discrepancy is acted on once.
    await asyncio.gather(cp.risk.parts.reconciler.run_once(), cp.risk.parts.reconciler.run_once())
    await eventually(lambda: len(state.accepted) == 1)
    event = state.accepted[0]
    assert event["type"] == "discrepancy.opened"
    data = event["data"]
    assert (data["order_id"], data["reason"], data["category"], data["correlation_id"]) == (
        "o-d", "AMOUNT_MISMATCH", "RECONCILIATION", "cid-disc")
    assert (data["export_amount"], data["import_amount"], data["exporter_wl"], data["importer_wl"]) == (
        "50", "40", "wl-a", "wl-b")
    assert data["alert_id"] and data["pair_paused"] is False
    async with cp.risk.engine.connect() as conn:
        queued = (await conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                                     .where(deliveries.c.event_type == "discrepancy.opened"))).scalar_one()
    assert queued == 1
    await cp.risk.parts.reconciler.run_once()
    await asyncio.sleep(0.3)
    assert len(state.accepted) == 1  # acted on already: nothing new


async def test_an_idle_outbox_runs_no_query_yet_delivers_at_once_and_retries_when_due(
    cp: Cp, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    statements: list[tuple[float, str]] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "webhook_deliveries" in statement:
            statements.append((time.monotonic(), statement))

    event.listen(cp.risk.engine.sync_engine, "before_cursor_execute", count)
    try:
        await asyncio.sleep(0.5)  # the start-up pass (and, on PostgreSQL, the one after LISTEN connects)
        started = len(statements)
        await asyncio.sleep(1.5)
        assert statements[started:] == []  # idle: no scan of the outbox (the safety re-check is 60 s away)

        added = await cp.stub.AddWebhook(pb.AddWebhookRequest(url=url), timeout=5)
        state.secret = added.secret  # the receiver answers 500 to the first attempt
        queued = time.monotonic()
        delivery = (await cp.stub.TestWebhook(pb.TestWebhookRequest(webhook_id=added.webhook.webhook_id),
                                              timeout=5)).delivery_id
        await eventually(lambda: state.attempts.get(delivery, 0) >= 1, timeout=5)
        first = time.monotonic() - queued
        await eventually(lambda: len(state.accepted) == 1, timeout=5)
        retried = time.monotonic() - queued
        assert first < 0.5, first  # woken by the queueing transaction, not by a timer
        assert retried < 0.5 + FAST.max_backoff_s * 2, retried  # the retry went out when it fell due
        assert state.attempts[delivery] == 2
        print(f"first attempt after {first * 1000:.0f} ms, retry delivered after {retried * 1000:.0f} ms")

        await asyncio.sleep(0.3)  # the last pass after the delivery settles
        settled = len(statements)
        await asyncio.sleep(1.5)
        assert len(statements) == settled, statements[settled:]  # idle again: nothing
    finally:
        event.remove(cp.risk.engine.sync_engine, "before_cursor_execute", count)


async def test_an_event_queued_by_another_replica_wakes_this_one_at_its_commit(
    cp: Cp, receiver: tuple[Receiver, str], db_url: str
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("replicas share a PostgreSQL store; the notification is PostgreSQL's")
    state, url = receiver
    state.fail_first = False
    added = await cp.stub.AddWebhook(pb.AddWebhookRequest(url=url), timeout=5)
    state.secret = added.secret
    await asyncio.sleep(0.5)  # the passes after AddWebhook are over; the running loop now sleeps (60 s re-check)
    other = WebhookOutbox(cp.risk.engine, cp.risk.ctx.clock, FAST)  # another replica's outbox: no loop here
    queued = time.monotonic()
    async with cp.risk.engine.begin() as conn:
        await other.enqueue(conn, "webhook.test", {"requested_by": "replica-2"})
    await eventually(lambda: len(state.accepted) == 1, timeout=5)
    took = time.monotonic() - queued
    assert took < 1.0, took  # woken by the NOTIFY sent at the other replica's commit
    assert state.accepted[0]["data"] == {"requested_by": "replica-2"}


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
