"""The webhook feature's contribution to the CP: WebhookService (operators), the outbox loop, the signal hook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk.signal_store import SignalRecord
from xporty.cp.v1 import webhook_service_pb2, webhook_service_pb2_grpc
from xwl_runtime.component import Component

from .outbox import WebhookOutbox
from .servicer import WebhookServicer
from .settings import WebhookConfig

if TYPE_CHECKING:
    from cp_server.context import CpContext

SERVICE = webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name

SIGNAL_EVENTS = {"ALERT": "alert.raised", "ALERT_CLEARED": "alert.cleared", "DISABLE": "pair.disabled",
                 "ENABLE": "pair.enabled", "PAIR_STATUS": "pair.status"}
"""Webhook event type of each signal kind."""


@dataclass
class Webhooks:
    component: Component
    outbox: WebhookOutbox

    async def on_signal(self, conn: AsyncConnection, record: SignalRecord) -> None:
        """Queue the signal's webhook event in the signal's own transaction."""
        event_type = SIGNAL_EVENTS.get(record.kind)
        if event_type is None:
            return
        data: dict[str, Any] = {
            "signal_id": record.signal_id, "sequence": record.sequence, "kind": record.kind,
            "source": record.source, "exporter_wl": record.exporter_wl, "importer_wl": record.importer_wl,
            "reason": record.reason, "correlation_id": record.correlation_id,
            "issue_time": record.issue_time.isoformat(),
        }
        if record.pair_status is not None:
            data["pair_status"] = record.pair_status
        await self.outbox.enqueue(conn, event_type, data)


def install(ctx: CpContext, config: WebhookConfig | None = None) -> Webhooks:
    outbox = WebhookOutbox(ctx.engine, ctx.clock, config or ctx.settings.webhooks, metrics=ctx.metrics)
    servicer = WebhookServicer(ctx.engine, ctx.audit, outbox, ctx.clock)
    component = Component(
        name="webhooks",
        registrations=[lambda server: webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(servicer, server)],
        service_names=[SERVICE], loops=[outbox.run],
    )
    return Webhooks(component=component, outbox=outbox)
