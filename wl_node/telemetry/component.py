"""The telemetry feature's contribution to a WL node: the shipper loop over the durable event queue.

``install`` returns a ``TelemetryComponent`` (a ``Component`` that also carries the shipper), so the composition
root lists it like any feature (``NodeFeatures.telemetry``) and hands the shipper to the features built after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wl_node.context import NodeContext
from wl_node.cp_channel import CpChannel
from wl_node.metrics import EVENT_QUEUE_DEPTH
from xwl_runtime.component import Component
from xwl_runtime.identity import Identity
from xwl_runtime.metrics import Samples
from xwl_runtime.pki import PkiDir
from xwl_runtime.tls import TlsMaterial

from . import queue
from .shipper import Shipper, ShipperConfig

NAME = "telemetry"


@dataclass
class TelemetryComponent(Component):
    """The component plus the shipper (``kick()`` it after enqueuing to ship at once)."""

    shipper: Shipper = field(kw_only=True)


def _material_loader(ctx: NodeContext) -> Callable[[], TlsMaterial | None]:
    first = [ctx.tls]

    def load() -> TlsMaterial | None:
        # The first load uses the material the node started with; after a rotation the renewer has written the
        # new pair to the PKI directory (atomically), which is where the next load reads it.
        if first:
            return first.pop()
        if ctx.tls is None:
            return None
        return TlsMaterial.from_pki(PkiDir(ctx.settings.pki_dir), Identity.wl(ctx.settings.wl_id))

    return load


def install(ctx: NodeContext, cp: CpChannel, config: ShipperConfig | None = None) -> TelemetryComponent:
    """Build the shipper of this node and its loop."""
    cadence = ctx.settings.cadence
    config = config or ShipperConfig(idle_interval_s=cadence.shipper_idle_s, coalesce_s=cadence.shipper_coalesce_s)
    shipper = Shipper(ctx.engine, cp, ctx.clock, _material_loader(ctx), config=config)

    async def queue_depth() -> Samples:
        async with ctx.engine.connect() as conn:
            return {EVENT_QUEUE_DEPTH.name: [((), float(await queue.depth(conn)))]}

    ctx.metrics.track_store([EVENT_QUEUE_DEPTH], queue_depth)
    return TelemetryComponent(name=NAME, loops=[shipper.run], shipper=shipper)
