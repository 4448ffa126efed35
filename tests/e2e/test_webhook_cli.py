"""``xcwl webhook add|list|test|remove`` against the composed CP (WebhookService wired by ``build_cp``)."""

from __future__ import annotations

import asyncio
import json
import time

import sqlalchemy as sa

from cp_server.webhooks.tables import deliveries, endpoints
from tests.e2e.conftest import Stack
from tests.xcwl.runner import xcwl


async def test_webhook_commands_round_trip_and_are_audited(sqlite_stack: Stack) -> None:
    stack, flags = sqlite_stack, sqlite_stack.ops_flags()
    # Nothing listens on port 9: the test delivery stays pending (retried), which list shows.
    added = await xcwl("webhook", "add", *flags, "--url", "http://127.0.0.1:9/hook", "--event", "alert.raised",
                       "--json")
    assert added.returncode == 0, added.stderr
    doc = json.loads(added.stdout)
    hook_id = doc["webhook"]["webhook_id"]
    assert doc["secret"].startswith("whsec_") and doc["webhook"]["event_types"] == ["alert.raised"]

    tested = await xcwl("webhook", "test", *flags, hook_id, "--json")
    assert tested.returncode == 0, tested.stderr
    delivery = json.loads(tested.stdout)["delivery_id"]

    async def attempted() -> bool:
        async with stack.cp.ctx.engine.connect() as conn:
            row = (await conn.execute(sa.select(deliveries.c.attempts, deliveries.c.last_error)
                                      .where(deliveries.c.delivery_id == delivery))).one()
        return bool(row.attempts >= 1 and row.last_error)

    deadline = time.monotonic() + 15
    while not await attempted():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    listed = await xcwl("webhook", "list", *flags, "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)["webhooks"]
    assert row["webhook_id"] == hook_id and int(row.get("pending", 0)) == 1

    bad = await xcwl("webhook", "add", *flags, "--url", "ftp://127.0.0.1/x")
    assert bad.returncode == 2 and "INVALID_ARGUMENT" in bad.stderr and "url" in bad.stderr

    removed = await xcwl("webhook", "remove", *flags, hook_id)
    assert removed.returncode == 0, removed.stderr
    async with stack.cp.ctx.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(endpoints))).scalar_one() == 0
        assert (await conn.execute(sa.select(sa.func.count()).select_from(deliveries))).scalar_one() == 0
    entries = await stack.cp.ctx.audit.list(stack.cp.ctx.engine, after_seq=0, limit=1000)
    assert {"webhook.add", "webhook.remove"} <= {e.action for e in entries}
    missing = await xcwl("webhook", "test", *flags, hook_id)
    assert missing.returncode == 2 and "WEBHOOK_NOT_FOUND" in missing.stderr
