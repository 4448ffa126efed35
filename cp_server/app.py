"""The CP's composition root: settings in, a running server with every component out.

``build_cp`` migrates the store, loads the CA, the CP's TLS pair and the JWT key, builds the context and the
components (policy, admin, identity), starts ONE grpc.aio server on two listeners — ``settings.listen`` with mTLS
required, ``settings.enroll_listen`` with server-only TLS where only anonymous rules (Enroll) pass — and runs the
components' loops. Health says NOT_SERVING until the policy world is loaded, then SERVING.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cp_server import risk_services as risk_component
from cp_server.audit.log import AuditLog
from cp_server.context import CpContext
from cp_server.dashboard import component as dashboard_component
from cp_server.identity import component as identity_component
from cp_server.identity.signing import load_or_create_signing_key, verification_keys
from cp_server.risk.engine import CP_ACTOR
from cp_server.rollout import component as rollout_component
from cp_server.settings import CpSettings
from cp_server.signals.pair_status import PairStatusSignals
from cp_server.slo import component as slo_component
from cp_server.store.changes import ChangeRunner
from cp_server.store.node_status import NodeStatusStore
from cp_server.store.pairs import PairPolicies
from cp_server.store.records import Status
from cp_server.store.registry import WlRegistry
from cp_server.trust import component as trust_component
from cp_server.webhooks import component as webhooks_component
from xwl_runtime import db
from xwl_runtime.clock import Clock, SystemClock
from xwl_runtime.component import Component
from xwl_runtime.heap import freeze_startup_heap
from xwl_runtime.identity import Identity
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.logs import log_serving
from xwl_runtime.metrics import MetricsListener, serve_metrics
from xwl_runtime.pki import PkiDir
from xwl_runtime.ratelimit import Admission
from xwl_runtime.server import (
    DEFAULT_GRACE_S,
    Listener,
    RunningServer,
    start_server,
    wait_for_termination_signal,
)
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial, server_tls_only_credentials

from .admin import component as admin_component
from .authz import TABLE as AUTHZ_TABLE
from .policy import component as policy_component
from .policy.hub import PolicyHub

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "store" / "migrations"
VERSION_TABLE = "cp_alembic_version"
READY_TIMEOUT_S = 60.0


@dataclass
class CpApp:
    """A running CP: its server, bound ports, context, hub and background loops."""

    server: RunningServer
    ctx: CpContext
    hub: PolicyHub
    server_credentials: ReloadableServerCredentials | None
    components: Sequence[Component]
    lifecycle: Lifecycle
    metrics_listener: MetricsListener | None = None
    dashboard_port: int | None = None
    """The dashboard's HTTPS port (None without ``dashboard.http_listen``)."""

    @property
    def port(self) -> int:
        """The mTLS port."""
        return self.server.ports[0]

    @property
    def enroll_port(self) -> int:
        """The enrollment (server-only TLS) port."""
        return self.server.ports[1]

    async def stop(self, grace: float = DEFAULT_GRACE_S) -> None:
        """Drain: end policy and signal streams (nodes reconnect elsewhere), let unary RPCs finish, stop loops,
        flush, close the store (``xwl_runtime.lifecycle``)."""
        await self.lifecycle.stop(grace)


def _listeners(settings: CpSettings, tls: TlsMaterial) -> tuple[list[Listener], ReloadableServerCredentials | None]:
    main_limit, enroll_limit = settings.max_receive_bytes, settings.enroll_max_receive_bytes
    if settings.insecure_dev:
        return [Listener(settings.listen, None, max_receive_bytes=main_limit),
                Listener(settings.enroll_listen, None, max_receive_bytes=enroll_limit)], None
    creds = ReloadableServerCredentials(tls)
    return [
        Listener(settings.listen, creds.credentials, max_receive_bytes=main_limit),
        Listener(settings.enroll_listen, server_tls_only_credentials(tls), max_receive_bytes=enroll_limit),
    ], creds


def discrepancy_pauser(pairs: PairPolicies) -> Callable[[str, str, str], Awaitable[None]]:
    """How the reconciler pauses a pair over a discrepancy: an ordinary policy change by the CP (audited, in
    every view of both WLs, and a PAIR_STATUS signal through the status hook)."""

    async def pause(wl_a: str, wl_b: str, reason: str) -> None:
        await pairs.update_pair(CP_ACTOR, wl_x=wl_a, wl_y=wl_b, status=Status.PAUSED, reason=reason[:200])

    return pause


async def build_cp(settings: CpSettings, clock: Clock | None = None) -> CpApp:
    """Migrate, build and start a CP; returns once its policy world is loaded and health says SERVING."""
    clock = clock or SystemClock()
    await asyncio.to_thread(db.upgrade, settings.db_url, MIGRATIONS_DIR, version_table=VERSION_TABLE)
    pki = PkiDir(settings.pki_dir)
    ca = pki.load_ca()
    tls = TlsMaterial.from_pki(pki, Identity.cp())
    jwt_key = load_or_create_signing_key(settings.pki_dir)
    engine = db.create_engine(settings.db_url)
    ctx = CpContext(
        settings=settings, engine=engine, clock=clock, ca=ca, tls=tls, jwt_key=jwt_key,
        audit=AuditLog(ca.key, clock),
    )
    hub = PolicyHub(
        engine, clock, verification_keys(jwt_key),
        checkpoints=ctx.audit.checkpoints,
    )
    slo = slo_component.install(ctx)  # ReportOperations and GetSloReport, served by the risk component's services
    risk, risk_parts = risk_component.build(ctx, slo=slo)
    webhooks = webhooks_component.install(ctx)
    risk_parts.store.add_insert_hook(webhooks.on_signal)  # alerts, disables, enables → operator webhooks
    # A pair's status change also goes out as a PAIR_STATUS signal, issued in the change's own transaction and
    # pushed to the signal streams first, never behind the policy fan-out.
    status_signals = PairStatusSignals(risk_parts.store, risk_parts.hub)
    changes = ChangeRunner(engine, ctx.audit, clock, notify_channel=settings.notify_channel)
    changes.add_commit_listener(status_signals.after_commit)
    changes.add_commit_listener(hub.catch_up)
    pairs = PairPolicies(changes, settings)
    pairs.add_status_hook(status_signals.on_status_change)
    risk_parts.reconciler.pause_pair = discrepancy_pauser(pairs)
    risk_parts.reconciler.on_discrepancy = webhooks.on_discrepancy  # → discrepancy.opened
    node_status = NodeStatusStore(engine)
    trust = trust_component.build(ctx, hub=hub, changes=changes)
    rollout = rollout_component.install(ctx, changes=changes, hub=hub, signals=risk_parts.store,
                                        signal_hub=risk_parts.hub, webhooks=webhooks.outbox)
    dashboard = dashboard_component.install(ctx)
    components = [
        policy_component.install(ctx, hub=hub, node_status=node_status, versions=rollout.versions.record),
        admin_component.install(
            ctx, registry=WlRegistry(changes), pairs=pairs, hub=hub, node_status=node_status, trust=trust.admin,
            versions=rollout.versions,
        ),
        identity_component.install(ctx, token_keys=trust.token_keys),
        trust.component,
        risk,
        webhooks.component,
        slo.component,
        rollout.component,
        dashboard.component,
    ]
    listeners, creds = _listeners(settings, tls)
    try:
        server = await start_server(
            registrations=[r for c in components for r in c.registrations],
            service_names=[n for c in components for n in c.service_names],
            listeners=listeners,
            authz_table=AUTHZ_TABLE,
            insecure_dev=settings.insecure_dev,
            serving=False,
            peer_guard=trust.guard,
            admission=Admission(settings.rate_limits),
            metrics=ctx.metrics.rpc,
        )
    except (RuntimeError, ValueError, OSError):  # e.g. a listen address already in use
        await engine.dispose()
        raise
    lifecycle = Lifecycle(server, components, closers=[ctx.engine.dispose])
    app = CpApp(server=server, ctx=ctx, hub=hub, server_credentials=creds, components=components,
                lifecycle=lifecycle)
    lifecycle.start_loops()
    try:
        await asyncio.wait_for(hub.ready.wait(), timeout=READY_TIMEOUT_S)
    except TimeoutError:
        await app.stop(0)
        raise
    bound = {"mtls": _bound(settings.listen, app.port), "enroll": _bound(settings.enroll_listen, app.enroll_port)}
    if settings.metrics_listen:
        try:
            listener = app.metrics_listener = serve_metrics(settings.metrics_listen, ctx.metrics.registry)
            lifecycle.add_closer(lambda: asyncio.to_thread(listener.close))
        except OSError:
            await app.stop(0)
            raise
        bound["metrics"] = _bound(settings.metrics_listen, app.metrics_listener.port)
    if dashboard.server is not None:
        app.dashboard_port = dashboard.server.port
        bound["dashboard"] = _bound(settings.dashboard.http_listen, dashboard.server.port)
    await server.set_serving(True)
    log_serving("control plane", listeners=bound, store_url=settings.db_url, policy_version=hub.version)
    return app


def _bound(address: str, port: int) -> str:
    """``address`` with the port actually bound (``:0`` resolved)."""
    return f"{address.rpartition(':')[0]}:{port}"


async def run_cp(settings: CpSettings, *, grace: float = DEFAULT_GRACE_S) -> None:
    """Serve until SIGTERM/SIGINT, then drain."""
    app = await build_cp(settings)
    freeze_startup_heap()
    try:
        await wait_for_termination_signal()
    finally:
        await app.stop(grace)
