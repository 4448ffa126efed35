"""The webhook feature's contribution to the CP: WebhookService (operators), the outbox loop, the signal and
discrepancy hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk.signal_store import SignalRecord
from cp_server.settings.webhooks import WebhookConfig
from xporty.cp.v1 import webhook_service_pb2, webhook_service_pb2_grpc
from xwl_runtime.component import BackgroundLoop, Component
from xwl_runtime.db import is_sqlite
from xwl_runtime.notify import NotifyListener

from .outbox import WebhookOutbox
from .servicer import WebhookServicer

if TYPE_CHECKING:
    from cp_server.context import CpContext

SERVICE = webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name

SIGNAL_EVENTS = {"ALERT": "alert.raised", "ALERT_CLEARED": "alert.cleared", "DISABLE": "pair.disabled",
                 "ENABLE": "pair.enabled", "PAIR_STATUS": "pair.status"}
"""Webhook event type of each signal kind."""
DISCREPANCY_EVENT = "discrepancy.opened"


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


    async def on_discrepancy(self, conn: AsyncConnection, discrepancy: dict[str, Any]) -> None:
        """Queue ``discrepancy.opened`` in the transaction that raises the discrepancy's alert."""
        keys = ("order_id", "reason", "category", "exporter_wl", "importer_wl", "correlation_id", "disputed_value",
                "export_amount", "import_amount", "export_quantity", "import_quantity", "alert_id", "pair_paused")
        data: dict[str, Any] = {k: discrepancy.get(k) for k in keys}
        detected = discrepancy.get("detect_time")
        data["detect_time"] = detected.isoformat() if detected is not None else None
        await self.outbox.enqueue(conn, DISCREPANCY_EVENT, data)


def install(ctx: CpContext, config: WebhookConfig | None = None) -> Webhooks:
    config = config or ctx.settings.webhooks
    outbox = WebhookOutbox(ctx.engine, ctx.clock, config, metrics=ctx.metrics)
    loops: list[BackgroundLoop] = [outbox.run]
    if not is_sqlite(ctx.settings.db_url):  # other replicas' queued events wake this loop at their commit
        loops.append(NotifyListener(ctx.settings.db_url, config.notify_channel, outbox).run)
    servicer = WebhookServicer(ctx.engine, ctx.audit, outbox, ctx.clock)
    component = Component(
        name="webhooks",
        registrations=[lambda server: webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(servicer, server)],
        service_names=[SERVICE], loops=loops,
    )
    return Webhooks(component=component, outbox=outbox)
