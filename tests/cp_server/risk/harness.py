"""A real CP serving the risk component (Telemetry, Signal, Analytics) for the risk tests.

Assembled from the risk component and a minimal ``CpContext`` (real store with every migration branch, real audit
log), so the tests do not depend on the CP's composition root. WL nodes are played by ``Node``: a real mTLS
channel with the WL's certificate, and that certificate's key signing events.

The CP counts an order once both sides agree (or after the grace period), so by default a ``Node`` that
publishes an EXPORT_CONFIRMED (as an unsigned ``LedgerEvent``) first has the importer's node publish the matching
IMPORT_FINALIZED, as a real importer does right after the exporter confirms: the exporter's confirmation is then
the event that makes the order count (and the one named on any alert or signal it triggers). Tests of a silent or
lying importer set ``Node.honest_importer = False`` or publish pre-signed events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.audit.log import AuditLog
from cp_server.authz import TABLE as CP_AUTHZ
from cp_server.context import CpContext
from cp_server.risk_services import RiskParts, build
from cp_server.settings import CpSettings
from cp_server.settings.risk import RiskSettings
from cp_server.slo import component as slo_component
from cp_server.store.schema import pairs, white_labels
from tests.support.pki import PkiFixture
from xporty.cp.v1 import (
    analytics_service_pb2_grpc,
    signal_service_pb2_grpc,
    telemetry_pb2,
    telemetry_service_pb2,
    telemetry_service_pb2_grpc,
)
from xwl_runtime import db
from xwl_runtime.clock import Clock, SystemClock
from xwl_runtime.event_signing import certificate_sha256, sign
from xwl_runtime.identity import Identity
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.pki import load_key
from xwl_runtime.server import Listener, RunningServer, start_server
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial, secure_channel

REPO = Path(__file__).resolve().parents[3]
MIGRATIONS = REPO / "cp_server" / "store" / "migrations"
KIND = telemetry_pb2.LedgerEventKind


def migrate(url: str) -> None:
    db.upgrade(url, MIGRATIONS, version_table="cp_alembic_version")


@dataclass
class Node:
    """A WL node as the CP sees it: its mTLS channel and the key that signs its events."""

    wl_id: str
    material: TlsMaterial
    channel: grpc.aio.Channel
    key: ec.EllipticCurvePrivateKey = field(init=False)
    fingerprint: str = field(init=False)
    sequence: int = 0
    peers: Callable[[str], Node] | None = None
    """The node of another WL of the test (for the importer's IMPORT_FINALIZED)."""
    honest_importer: bool = True
    """Publishing an EXPORT_CONFIRMED first makes its importer's node finalize the same sale."""

    def __post_init__(self) -> None:
        self.key = load_key(self.material.pair.key_pem)
        self.fingerprint = certificate_sha256(self.material.pair.cert_pem)

    @property
    def telemetry(self) -> telemetry_service_pb2_grpc.TelemetryServiceStub:
        return telemetry_service_pb2_grpc.TelemetryServiceStub(self.channel)

    @property
    def signals(self) -> signal_service_pb2_grpc.SignalServiceStub:
        return signal_service_pb2_grpc.SignalServiceStub(self.channel)

    def event(
        self,
        kind: int,
        *,
        order_id: str = "",
        exporter: str = "",
        importer: str = "",
        amount: str = "",
        currency: str = "",
        correlation_id: str | None = None,
        event_id: str | None = None,
        signal_id: str = "",
        quantity: int = 1,
    ) -> telemetry_pb2.LedgerEvent:
        self.sequence += 1
        e = telemetry_pb2.LedgerEvent(
            event_id=event_id or uuid.uuid4().hex, wl_id=self.wl_id,
            correlation_id=uuid.uuid4().hex if correlation_id is None else correlation_id, kind=kind,
            order_id=order_id, exporter_wl=exporter, importer_wl=importer, sequence=self.sequence,
            signal_id=signal_id, quantity=quantity,
        )
        e.amount.currency = currency
        e.amount.amount = amount
        e.occur_time.FromDatetime(dt.datetime.now(dt.UTC))
        return e

    def sign(self, event: telemetry_pb2.LedgerEvent) -> telemetry_pb2.SignedEvent:
        return sign(event, self.key, self.material.pair.cert_pem, fingerprint=self.fingerprint)

    async def finalize(self, confirmed: telemetry_pb2.LedgerEvent) -> telemetry_service_pb2.PublishEventsResponse:
        """Publish this importer's IMPORT_FINALIZED of the sale ``confirmed`` reports (same amount, quantity, cid)."""
        event = self.event(KIND.LEDGER_EVENT_KIND_IMPORT_FINALIZED, order_id=confirmed.order_id,
                           exporter=confirmed.exporter_wl, importer=confirmed.importer_wl,
                           amount=confirmed.amount.amount, currency=confirmed.amount.currency,
                           correlation_id=confirmed.correlation_id, quantity=confirmed.quantity)
        signed = [self.sign(event)]
        return await self.telemetry.PublishEvents(telemetry_service_pb2.PublishEventsRequest(events=signed),
                                                  timeout=30)

    async def publish(self, *events: telemetry_pb2.LedgerEvent | telemetry_pb2.SignedEvent
                      ) -> telemetry_service_pb2.PublishEventsResponse:
        for e in events:
            if (isinstance(e, telemetry_pb2.LedgerEvent) and e.kind == KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED
                    and self.honest_importer and self.peers is not None and e.importer_wl
                    and e.importer_wl != self.wl_id and e.wl_id == self.wl_id):
                await self.peers(e.importer_wl).finalize(e)
        signed = [e if isinstance(e, telemetry_pb2.SignedEvent) else self.sign(e) for e in events]
        return await self.telemetry.PublishEvents(telemetry_service_pb2.PublishEventsRequest(events=signed),
                                                  timeout=30)


@dataclass
class RiskCp:
    """The running CP and what tests inspect."""

    server: RunningServer
    engine: AsyncEngine
    ctx: CpContext
    parts: RiskParts
    audit: AuditLog
    pki: PkiFixture
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    honest_importers: bool = True
    """``Node.honest_importer`` of the nodes created from now on."""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def channel(self, identity: Identity, material: TlsMaterial | None = None) -> grpc.aio.Channel:
        ch = secure_channel(self.target, material or self.pki.material(identity), expected=Identity.cp())
        self.channels.append(ch)
        return ch

    def node(self, wl_id: str) -> Node:
        """The node of ``wl_id`` (one channel per WL for the whole test)."""
        if wl_id not in self.nodes:
            material = self.pki.material(Identity.wl(wl_id))
            self.nodes[wl_id] = Node(wl_id, material, self.channel(Identity.wl(wl_id), material), peers=self.node,
                                     honest_importer=self.honest_importers)
        return self.nodes[wl_id]

    def analytics(self, name: str = "alice") -> analytics_service_pb2_grpc.AnalyticsServiceStub:
        return analytics_service_pb2_grpc.AnalyticsServiceStub(self.channel(Identity.ops(name)))

    def ops_signals(self, name: str = "alice") -> signal_service_pb2_grpc.SignalServiceStub:
        return signal_service_pb2_grpc.SignalServiceStub(self.channel(Identity.ops(name)))

    async def seed(self, wls: dict[str, tuple[str, str]], pair_limits: Sequence[tuple[str, str, str]]) -> None:
        """Registry rows directly (CP-core's admin RPCs are not under test here): wl → (currency, rate)."""
        now = dt.datetime.now(dt.UTC)
        async with self.engine.begin() as conn:
            for wl_id, (currency, rate) in wls.items():
                await conn.execute(white_labels.insert().values(
                    wl_id=wl_id, name=wl_id, currency=currency, currency_decimals=2, reference_rate=rate,
                    trader_endpoint="127.0.0.1:1", created_at=now, updated_at=now, changed_version=0))
            for a, b, limit in pair_limits:
                await conn.execute(pairs.insert().values(
                    wl_a=min(a, b), wl_b=max(a, b), status="ACTIVE", imbalance_limit=limit, fx_rate="1",
                    fx_version=1, imports_frozen=False, created_at=now, updated_at=now, changed_version=0))

    async def set_limit(self, a: str, b: str, limit: Decimal) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(pairs.update().where(pairs.c.wl_a == min(a, b), pairs.c.wl_b == max(a, b))
                               .values(imbalance_limit=str(limit)))


@asynccontextmanager
async def running_risk_cp(
    pki: PkiFixture, db_url: str, *, clock: Clock | None = None, settings: RiskSettings | None = None,
    heartbeat: dt.timedelta = dt.timedelta(seconds=10), run_loops: bool = True,
) -> AsyncIterator[RiskCp]:
    await asyncio.to_thread(migrate, db_url)
    engine = db.create_engine(db_url)
    clock = clock or SystemClock()
    material = pki.material(Identity.cp())
    ca = pki.dir.load_ca()
    audit = AuditLog(ca.key, clock)
    ctx = CpContext(
        settings=CpSettings(db_url=db_url, pki_dir=pki.dir.root, heartbeat_interval=heartbeat), engine=engine,
        clock=clock, ca=ca, tls=material, jwt_key=ec.generate_private_key(ec.SECP256R1()), audit=audit,
    )
    component, parts = build(ctx, settings or RiskSettings(), slo=slo_component.install(ctx))
    server = await start_server(
        registrations=component.registrations, service_names=component.service_names,
        listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(material).credentials)],
        authz_table=CP_AUTHZ,
    )
    lifecycle = Lifecycle(server, [component], closers=[engine.dispose])
    lifecycle.start_loops(component.loops if run_loops else component.loops[:1])
    cp = RiskCp(server, engine, ctx, parts, audit, pki)
    try:
        yield cp
    finally:
        for ch in cp.channels:
            await ch.close()
        await lifecycle.stop(0)
