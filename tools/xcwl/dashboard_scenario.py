"""A scripted trade scenario on a CP with its dashboard, for the browser tests and ``xcwl dashboard screenshots``.

The CP is the real one (``cp_server.app.build_cp``: migrations, both gRPC listeners, the dashboard's HTTPS
listener) on a store of the caller's choice. Three WLs (wl-a XPY-A at 1, wl-b XPY-B at 0.5, wl-c XPY-C at 2) and
pairs wl-a/wl-b (limit 1000), wl-a/wl-c (limit 5000), wl-b/wl-c (limit 2000, PAUSED). Each node is played by its
WL's own certificate: it signs its ledger events with its key and publishes them over mTLS
(``TelemetryService/PublishEvents``) — the exporter its EXPORT_CONFIRMED, the importer the matching
IMPORT_FINALIZED — and reports views and PlaceOrder attempts of imported offers (``ReportOperations``).

Trade: wl-a sells wl-b 8 orders of 105.00 XPY-A (840 in the reference unit: 84% of the limit, so the CP raises an
ALERT), wl-b sells wl-a 2 orders of 40.00 XPY-B (20 each); wl-c sells wl-a 3 orders of 50.00 XPY-C (100 each).
wl-b viewed wl-a's offers 40 times and started 10 checkouts. The trader's manager contact never reaches the CP,
and the test checks it shows nowhere: ``MANAGER_CONTACT`` is what the WLs' offers carry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from cp_server.app import CpApp, build_cp
from cp_server.settings import CpSettings
from cp_server.settings.dashboard import DashboardSettings
from cp_server.trust.imports import CertificateImports
from xporty.cp.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    dashboard_service_pb2,
    dashboard_service_pb2_grpc,
    operations_pb2,
    registry_pb2,
    telemetry_pb2,
    telemetry_service_pb2,
    telemetry_service_pb2_grpc,
)
from xwl_runtime.event_signing import sign, sign_operations_report
from xwl_runtime.identity import Identity
from xwl_runtime.metrics import LATENCY_BUCKETS_S
from xwl_runtime.pki import PkiDir, load_key
from xwl_runtime.tls import TlsMaterial, secure_channel

OPERATOR = Identity.ops("exec")
WLS = {"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "0.5"), "wl-c": ("XPY-C", "2")}
PAIRS = (("wl-a", "wl-b", "1000", "ACTIVE"), ("wl-a", "wl-c", "5000", "ACTIVE"), ("wl-b", "wl-c", "2000", "PAUSED"))
TRADES = (("wl-a", "wl-b", "105.00", 8), ("wl-b", "wl-a", "40.00", 2), ("wl-c", "wl-a", "50.00", 3))
"""(exporter, importer, amount in the exporter's currency, orders)."""
VIEWS = (("wl-b", "wl-a", 40, 10),)
"""(importer, exporter, offer views, checkouts)."""
MANAGER_CONTACT = ("Maria Exportadora", "maria@wl-a.example", "+55 11 91234-5678")
TIMEOUT = 15.0


@dataclass
class Scenario:
    """The running CP and what the scenario drove."""

    app: CpApp
    pki: PkiDir
    stack: AsyncExitStack

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.app.dashboard_port}"

    async def link(self, identity: Identity = OPERATOR) -> str:
        """A one-time login link for ``identity`` (an operator, or a WL's app)."""
        async with secure_channel(f"127.0.0.1:{self.app.port}", TlsMaterial.from_pki(self.pki, identity),
                                  expected=Identity.cp()) as channel:
            resp = await dashboard_service_pb2_grpc.DashboardServiceStub(channel).CreateLoginLink(
                dashboard_service_pb2.CreateLoginLinkRequest(), timeout=TIMEOUT)
        return str(resp.url)

    @staticmethod
    def expected_value(exporter: str, importer: str) -> Decimal:
        """Reference value the scenario traded from ``exporter`` to ``importer``."""
        return sum((Decimal(amount) * n * Decimal(WLS[e][1]) for e, i, amount, n in TRADES
                    if (e, i) == (exporter, importer)), Decimal(0))


def _event(wl: str, kind: telemetry_pb2.LedgerEventKind, order_id: str, exporter: str, importer: str, amount: str,
           seq: int) -> telemetry_pb2.LedgerEvent:
    e = telemetry_pb2.LedgerEvent(event_id=uuid.uuid4().hex, wl_id=wl, correlation_id=f"cid-{order_id}", kind=kind,
                                  order_id=order_id, exporter_wl=exporter, importer_wl=importer, sequence=seq,
                                  quantity=1)
    e.amount.currency, e.amount.amount = WLS[exporter][0], amount
    e.occur_time.FromDatetime(dt.datetime.now(dt.UTC))
    return e


async def _publish(app: CpApp, pki: PkiDir, wl: str, events: list[telemetry_pb2.LedgerEvent]) -> None:
    material = TlsMaterial.from_pki(pki, Identity.wl(wl))
    key = load_key(material.pair.key_pem)
    async with secure_channel(f"127.0.0.1:{app.port}", material, expected=Identity.cp()) as channel:
        resp = await telemetry_service_pb2_grpc.TelemetryServiceStub(channel).PublishEvents(
            telemetry_service_pb2.PublishEventsRequest(events=[sign(e, key, material.pair.cert_pem) for e in events]),
            timeout=TIMEOUT)
    if resp.rejected:
        raise RuntimeError(f"scenario events refused: {list(resp.rejected)}")


async def drive(app: CpApp, pki: PkiDir) -> None:
    """Register, set the pairs, trade and report views (see the module docstring)."""
    ops = TlsMaterial.from_pki(pki, OPERATOR)
    async with secure_channel(f"127.0.0.1:{app.port}", ops, expected=Identity.cp()) as channel:
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        for wl, (currency, rate) in WLS.items():
            await admin.RegisterWl(admin_service_pb2.RegisterWlRequest(white_label=registry_pb2.WhiteLabel(
                wl_id=wl, name=f"Market {wl}", currency=currency, currency_decimals=2, reference_rate=rate,
                trader_endpoint="127.0.0.1:9")), timeout=TIMEOUT)
        for a, b, limit, status in PAIRS:
            await admin.UpdatePairPolicy(admin_service_pb2.UpdatePairPolicyRequest(
                wl_a=a, wl_b=b, imbalance_limit=limit, reason="scenario",
                status=f"RELATIONSHIP_STATUS_{status}"), timeout=TIMEOUT)
    imports = CertificateImports(app.ctx.engine, app.ctx.ca.certificate, app.ctx.audit)
    for wl in WLS:
        await imports.import_pem(TlsMaterial.from_pki(pki, Identity.wl(wl)).pair.cert_pem.decode(),
                                 actor=OPERATOR.spiffe_id, now=dt.datetime.now(dt.UTC))
    kind = telemetry_pb2.LedgerEventKind
    seq = 0
    for exporter, importer, amount, n in TRADES:
        for i in range(n):
            seq += 1
            order = f"{exporter}-{importer}-{i}"
            await _publish(app, pki, importer, [_event(importer, kind.LEDGER_EVENT_KIND_IMPORT_FINALIZED, order,
                                                       exporter, importer, amount, seq)])
            await _publish(app, pki, exporter, [_event(exporter, kind.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order,
                                                       exporter, importer, amount, seq)])
    for importer, exporter, views, checkouts in VIEWS:
        material = TlsMaterial.from_pki(pki, Identity.wl(importer))
        async with secure_channel(f"127.0.0.1:{app.port}", material, expected=Identity.cp()) as channel:
            report = telemetry_service_pb2.ReportOperationsRequest(peers=[operations_pb2.PeerOperations(
                exporter_wl=exporter, offer_views=views, attempts=checkouts, confirmed=checkouts,
                confirmation=operations_pb2.LatencyHistogram(
                    bounds_seconds=LATENCY_BUCKETS_S, counts=[checkouts] + [0] * len(LATENCY_BUCKETS_S)))])
            await telemetry_service_pb2_grpc.TelemetryServiceStub(channel).ReportOperations(
                sign_operations_report(report, material.pair.key_pem, material.pair.cert_pem), timeout=TIMEOUT)


@asynccontextmanager
async def running_scenario(root: Path, db_url: str | None = None, *, pki: PkiDir | None = None
                           ) -> AsyncIterator[Scenario]:
    """A CP with its dashboard on free loopback ports, after the scenario's trade; stopped on exit."""
    if pki is None:
        pki = PkiDir(root / "pki")
        pki.init_ca()
    for identity in (OPERATOR, Identity.app("wl-a", "ops"), *(Identity.wl(w) for w in WLS)):
        if not pki.has(identity):
            pki.issue(identity)
    settings = CpSettings(db_url=db_url or f"sqlite:///{root / 'cp.db'}", pki_dir=pki.root, listen="127.0.0.1:0",
                          enroll_listen="127.0.0.1:0", dashboard=DashboardSettings(http_listen="127.0.0.1:0"))
    app = await build_cp(settings)
    async with AsyncExitStack() as stack:
        try:
            await drive(app, pki)
            await asyncio.sleep(0)
            yield Scenario(app, pki, stack)
        finally:
            await app.stop(0)
