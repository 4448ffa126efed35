"""The rollout feature's contribution to the CP: RolloutService (operators), the automatic hold loop, the nodes'
reported capabilities (recorded by PolicyService) and the alert + webhook of an automatic hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cp_server.slo.breaches import SloBreaches
from cp_server.slo.report import SloReporter
from cp_server.store.changes import ChangeRunner, Tx
from cp_server.store.rollout_records import RolloutRecord
from xporty.cp.v1 import rollout_service_pb2, rollout_service_pb2_grpc
from xwl_runtime import correlation
from xwl_runtime.component import Component

from .capabilities import NodeVersions
from .flags import FeatureFlags
from .hold import AutoHold
from .servicer import RolloutServicer
from .stages import Rollouts

if TYPE_CHECKING:
    from cp_server.context import CpContext
    from cp_server.policy.hub import PolicyHub
    from cp_server.risk.signal_hub import SignalHub
    from cp_server.risk.signal_store import SignalStore
    from cp_server.webhooks.outbox import WebhookOutbox

SERVICE = rollout_service_pb2.DESCRIPTOR.services_by_name["RolloutService"].full_name
HELD_EVENT = "rollout.held"


@dataclass
class RolloutParts:
    """What the composition root wires in."""

    component: Component
    flags: FeatureFlags
    rollouts: Rollouts
    versions: NodeVersions
    auto_hold: AutoHold


def install(ctx: CpContext, *, changes: ChangeRunner, hub: PolicyHub, signals: SignalStore | None = None,
            signal_hub: SignalHub | None = None, webhooks: WebhookOutbox | None = None) -> RolloutParts:
    flags = FeatureFlags(changes)
    rollouts = Rollouts(changes)

    async def on_held(tx: Tx, before: RolloutRecord, after: RolloutRecord) -> None:
        cid = correlation.get() or correlation.new_correlation_id()
        text = f"rollout {after.exporter}->{after.importer} held at {after.stage.value}: {after.hold_reason}"
        if signals is not None:
            await signals.issue_alert(tx.conn, wl_a=after.exporter, wl_b=after.importer, raised=True,
                                      reason=text[:500], correlation_id=cid, now=tx.now, actor=tx.actor)
        if webhooks is not None:
            await webhooks.enqueue(tx.conn, HELD_EVENT, {
                "exporter_wl": after.exporter, "importer_wl": after.importer, "stage": after.stage.value,
                "previous_stage": before.stage.value, "reason": after.hold_reason,
                "policy_version": tx.version, "correlation_id": cid})

    rollouts.add_held_hook(on_held)

    async def after_hold() -> None:
        if signal_hub is not None:
            await signal_hub.refresh()  # push the ALERT to this replica's WatchSignals streams now

    breaches = SloBreaches(ctx.engine, webhooks.enqueue if webhooks is not None else None,
                           min_samples=ctx.settings.rollout.hold_min_samples)
    auto_hold = AutoHold(rollouts, hub.world, SloReporter(ctx.engine), ctx.clock, ctx.settings.rollout,
                         after_hold=after_hold, breaches=breaches)
    servicer = RolloutServicer(flags, rollouts, ctx.clock)
    component = Component(
        name="rollout",
        registrations=[lambda server: rollout_service_pb2_grpc.add_RolloutServiceServicer_to_server(servicer, server)],
        service_names=[SERVICE], loops=[auto_hold.run],
    )
    return RolloutParts(component=component, flags=flags, rollouts=rollouts, versions=NodeVersions(ctx.engine),
                        auto_hold=auto_hold)
