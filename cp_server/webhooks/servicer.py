"""``WebhookService``: operators add, list, remove and test webhook endpoints (every change audited)."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.audit.log import AuditLog
from xporty.cp.v1 import webhook_pb2, webhook_service_pb2, webhook_service_pb2_grpc
from xwl_runtime.clock import Clock
from xwl_runtime.errors import InvalidArgument, NotFound
from xwl_runtime.pipeline import caller
from xwl_runtime.text import bounded

from . import signature
from .outbox import DEAD, DELIVERED, PENDING, WebhookOutbox
from .tables import deliveries, endpoints

EVENT_TYPES = ("alert.raised", "alert.cleared", "pair.disabled", "pair.enabled", "pair.status",
               "discrepancy.opened", "slo.breach", "slo.recovered", "rollout.held", "webhook.test")
"""Every event type the CP delivers (``docs/observability.md`` describes their ``data``)."""
MAX_URL = 2048


def _validate_url(url: str) -> str:
    bounded("url", url, max_chars=MAX_URL)
    parsed = urllib.parse.urlsplit(url)
    # Only http(s): urllib would also open file:// and ftp:// URLs.
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidArgument.field("url", "expected an http:// or https:// URL with a host")
    return url


class WebhookServicer(webhook_service_pb2_grpc.WebhookServiceServicer):
    def __init__(self, engine: AsyncEngine, audit: AuditLog, outbox: WebhookOutbox, clock: Clock) -> None:
        self._engine = engine
        self._audit = audit
        self._outbox = outbox
        self._clock = clock

    async def AddWebhook(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.AddWebhookRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> webhook_service_pb2.AddWebhookResponse:
        url = _validate_url(request.url)
        types = list(dict.fromkeys(request.event_types))
        for t in types:
            if t not in EVENT_TYPES:
                raise InvalidArgument.field("event_types",
                                            f"unknown event type; expected one of {', '.join(EVENT_TYPES)}")
        webhook_id, secret, now = "wh_" + uuid.uuid4().hex[:20], signature.new_secret(), self._clock.now()
        async with self._engine.begin() as conn:
            await conn.execute(endpoints.insert().values(webhook_id=webhook_id, url=url, event_types=json.dumps(types),
                                                         secret=secret, created_at=now))
            await self._audit.append(conn, actor=caller().spiffe_id, action="webhook.add",
                                     subject=f"webhook/{webhook_id}", before=None,
                                     after={"url": url, "event_types": types})
        hook = webhook_pb2.Webhook(webhook_id=webhook_id, url=url, event_types=types)
        hook.create_time.FromDatetime(now)
        return webhook_service_pb2.AddWebhookResponse(webhook=hook, secret=secret)

    async def ListWebhooks(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.ListWebhooksRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> webhook_service_pb2.ListWebhooksResponse:
        d = deliveries
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(endpoints).order_by(endpoints.c.created_at))).all()
            counts = (await conn.execute(sa.select(d.c.webhook_id, d.c.state, sa.func.count())
                                         .group_by(d.c.webhook_id, d.c.state))).all()
        by = {(c[0], c[1]): int(c[2]) for c in counts}
        out = []
        for r in rows:
            hook = webhook_pb2.Webhook(webhook_id=r.webhook_id, url=r.url, event_types=json.loads(r.event_types),
                                       pending=by.get((r.webhook_id, PENDING), 0), dead=by.get((r.webhook_id, DEAD), 0),
                                       delivered=by.get((r.webhook_id, DELIVERED), 0))
            hook.create_time.FromDatetime(r.created_at)
            out.append(hook)
        return webhook_service_pb2.ListWebhooksResponse(webhooks=out)

    async def RemoveWebhook(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.RemoveWebhookRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> webhook_service_pb2.RemoveWebhookResponse:
        webhook_id = bounded("webhook_id", request.webhook_id, max_chars=64)
        async with self._engine.begin() as conn:
            row = (await conn.execute(sa.select(endpoints.c.url).where(endpoints.c.webhook_id == webhook_id))).first()
            if row is None:
                raise NotFound("webhook not found", reason="WEBHOOK_NOT_FOUND")
            await conn.execute(deliveries.delete().where(deliveries.c.webhook_id == webhook_id,
                                                         deliveries.c.state == PENDING))
            await conn.execute(endpoints.delete().where(endpoints.c.webhook_id == webhook_id))
            await self._audit.append(conn, actor=caller().spiffe_id, action="webhook.remove",
                                     subject=f"webhook/{webhook_id}", before={"url": row.url}, after=None)
        return webhook_service_pb2.RemoveWebhookResponse()

    async def TestWebhook(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.TestWebhookRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> webhook_service_pb2.TestWebhookResponse:
        webhook_id = bounded("webhook_id", request.webhook_id, max_chars=64)
        async with self._engine.begin() as conn:
            ids = await self._outbox.enqueue(conn, "webhook.test", {"requested_by": caller().spiffe_id},
                                             only=webhook_id)
        if not ids:
            raise NotFound("webhook not found", reason="WEBHOOK_NOT_FOUND")
        return webhook_service_pb2.TestWebhookResponse(delivery_id=ids[0])
