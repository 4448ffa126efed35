"""What an on-call engineer configures and sees at the edge of real servers:

* ``xcwl cp serve --webhook-max-attempts N …`` reaches the delivery loop: a real HTTP receiver that always answers
  500 gets exactly N attempts, then the delivery is in the dead letter and nothing more is sent;
* the CP and a node each log one INFO line when they serve (bound listeners, version, store without password);
* every caller gets the correlation id back in the response metadata, on success and on a servicer's error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from cp_server.app import CpApp, build_cp
from cp_server.webhooks.tables import deliveries
from tests.support.pki import PkiFixture
from tests.support.webhook_receiver import serve_receiver
from tests.wl_node.catalog.helpers import DbFactory
from tests.wl_node.risk.harness import world
from xcwl.cli import build_parser
from xcwl.errors import CliError
from xcwl.serve import cp_settings
from xporty.cp.v1 import webhook_service_pb2 as pb
from xporty.cp.v1 import webhook_service_pb2_grpc as pb_grpc
from xporty.node.v1 import storefront_service_pb2, storefront_service_pb2_grpc
from xwl_runtime import correlation
from xwl_runtime.identity import Identity
from xwl_runtime.logs import SERVING_LOGGER
from xwl_runtime.tls import secure_channel

pytestmark = pytest.mark.timeout(120)

ATTEMPTS = 4


def _serve_args(pki: PkiFixture, db_url: str, *extra: str) -> list[str]:
    return ["cp", "serve", "--pki", str(pki.dir.root), "--db", db_url, "--listen", "127.0.0.1:0",
            "--enroll-listen", "127.0.0.1:0", *extra]


def _serving_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [{"msg": r.getMessage(), **getattr(r, "fields", {})} for r in caplog.records
            if r.name == SERVING_LOGGER and r.levelno == logging.INFO]


def test_webhook_flags_are_checked_together_at_the_edge(pki: PkiFixture, tmp_path: Path) -> None:
    pki.material(Identity.cp())
    db = f"sqlite:///{tmp_path / 'cp.db'}"
    settings = cp_settings(build_parser().parse_args(_serve_args(pki, db)), env={})
    assert (settings.webhooks.max_attempts, settings.webhooks.base_backoff_s, settings.webhooks.max_backoff_s,
            settings.webhooks.replay_window_s, settings.webhooks.timeout_s) == (10, 1.0, 3600.0, 300.0, 5.0)
    from_env = cp_settings(build_parser().parse_args(_serve_args(pki, db)),
                           env={"XCWL_CP__WEBHOOKS__MAX_ATTEMPTS": "3", "XCWL_CP__WEBHOOKS__REPLAY_WINDOW_S": "60"})
    assert (from_env.webhooks.max_attempts, from_env.webhooks.replay_window_s) == (3, 60.0)
    for bad, message in (
        (["--webhook-max-attempts", "0"], "--webhook-max-attempts: expected a positive number"),
        (["--webhook-backoff-base", "10", "--webhook-backoff-cap", "5"], "base_backoff_s <= max_backoff_s"),
        (["--webhook-replay-window", "4"], "below replay_window_s"),
    ):
        with pytest.raises(CliError, match=message):
            cp_settings(build_parser().parse_args(_serve_args(pki, db, *bad)), env={})


async def test_configured_max_attempts_dead_letters_after_exactly_that_many_and_cp_edge_is_observable(
    pki: PkiFixture, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pki.material(Identity.cp())
    args = build_parser().parse_args(_serve_args(
        pki, db_url, "--webhook-max-attempts", str(ATTEMPTS), "--webhook-backoff-base", "0.05",
        "--webhook-backoff-cap", "0.2", "--webhook-timeout", "2"))
    settings = cp_settings(args, env={})
    caplog.set_level(logging.INFO, logger=SERVING_LOGGER)
    cp = await build_cp(settings)
    try:
        [line] = _serving_lines(caplog)
        assert line["msg"] == "control plane serving" and line["version"]
        assert line["listeners"] == {"mtls": f"127.0.0.1:{cp.port}", "enroll": f"127.0.0.1:{cp.enroll_port}"}
        assert line["store"] == db_url  # no password in these URLs: shown as given

        async with serve_receiver() as (receiver, url), secure_channel(
                f"127.0.0.1:{cp.port}", pki.material(Identity.ops("alice")), expected=Identity.cp()) as channel:
            receiver.always_fail = True
            stub = pb_grpc.WebhookServiceStub(channel)
            added = stub.AddWebhook(pb.AddWebhookRequest(url=url), timeout=5,
                                    metadata=((correlation.METADATA_KEY, "cid-add-hook"),))
            hook = await added
            receiver.secret = hook.secret
            assert dict(await added.initial_metadata())[correlation.METADATA_KEY] == "cid-add-hook"

            # A servicer's refusal carries the caller's id too; a caller without one gets a fresh id.
            missing = stub.RemoveWebhook(pb.RemoveWebhookRequest(webhook_id="wh_nothing"), timeout=5,
                                         metadata=((correlation.METADATA_KEY, "cid-remove-missing"),))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await missing
            assert err.value.code() is grpc.StatusCode.NOT_FOUND
            assert dict(await missing.initial_metadata())[correlation.METADATA_KEY] == "cid-remove-missing"
            bad = stub.TestWebhook(pb.TestWebhookRequest(webhook_id=""), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError):
                await bad
            assert len(dict(await bad.initial_metadata())[correlation.METADATA_KEY]) == 32

            delivery = (await stub.TestWebhook(pb.TestWebhookRequest(webhook_id=hook.webhook.webhook_id),
                                               timeout=5)).delivery_id
            deadline = time.monotonic() + 30
            while (row := await _delivery(cp, delivery)) is None or row.state != "DEAD":
                assert time.monotonic() < deadline, row
                await asyncio.sleep(0.05)
            assert row.attempts == ATTEMPTS
            await asyncio.sleep(0.6)  # past the backoff cap: no attempt after the dead letter
            assert receiver.attempts == {delivery: ATTEMPTS}
            assert receiver.refused == []  # every attempt was signed within the replay window
            listed = (await stub.ListWebhooks(pb.ListWebhooksRequest(), timeout=5)).webhooks
            assert [(w.delivered, w.pending, w.dead) for w in listed] == [(0, 0, 1)]
    finally:
        await cp.stop(0)


async def _delivery(cp: CpApp, delivery_id: str) -> sa.Row[tuple[object, ...]] | None:
    async with cp.ctx.engine.connect() as conn:
        row: sa.Row[tuple[object, ...]] | None = (await conn.execute(
            sa.select(deliveries.c.state, deliveries.c.attempts).where(deliveries.c.delivery_id == delivery_id)
        )).first()
    return row


async def test_a_node_logs_its_serving_line_and_returns_the_correlation_id_even_when_it_refuses(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SERVING_LOGGER)
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b"]) as w:
        node = await w.start_node("wl-a")
        lines = [x for x in _serving_lines(caplog) if x["msg"] == "WL node serving"]
        assert len(lines) == 1
        line = lines[0]
        assert line["listeners"] == {"mtls": f"127.0.0.1:{node.port}"} and line["wl_id"] == "wl-a"
        assert line["version"] and line["store"]
        # An app of another WL is refused by the node's authorization table: the id still comes back.
        material = pki.material(Identity.app("wl-b", "shop"))
        async with secure_channel(f"127.0.0.1:{node.port}", material, expected=Identity.wl("wl-a")) as channel:
            call = storefront_service_pb2_grpc.StorefrontServiceStub(channel).ListImportedOffers(
                storefront_service_pb2.ListImportedOffersRequest(), timeout=5,
                metadata=((correlation.METADATA_KEY, "cid-foreign-app"),))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert dict(await call.initial_metadata())[correlation.METADATA_KEY] == "cid-foreign-app"
        # A server stream of the WL's own app: the id is in the initial metadata, before any message.
        own = pki.material(Identity.app("wl-a", "shop"))
        async with secure_channel(f"127.0.0.1:{node.port}", own, expected=Identity.wl("wl-a")) as channel:
            stream = storefront_service_pb2_grpc.StorefrontServiceStub(channel).WatchPairAlerts(
                storefront_service_pb2.WatchPairAlertsRequest(), timeout=5,
                metadata=((correlation.METADATA_KEY, "cid-watch-alerts"),))
            assert dict(await stream.initial_metadata())[correlation.METADATA_KEY] == "cid-watch-alerts"
            stream.cancel()
