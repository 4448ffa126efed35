"""Composition root of a WL node: builds every dependency from ``NodeSettings`` and runs one server.

Order of start-up (each step needs the previous one)::

    store (migrations, engine, claim) → TLS material → PolicyState + last-known-good view → CP channel + policy agent
    → feature components → one gRPC server (NOT_SERVING) → health from the view's freshness → background loops

The node therefore serves its persisted view before it has reached the CP, and reports NOT_SERVING until a view
is present and fresh. ``run_node`` serves until SIGTERM/SIGINT, then drains in-flight RPCs for the grace period.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from xporty.cp.v1 import audit_pb2, policy_pb2
from xwl_runtime.audit_checkpoint import ca_public_key
from xwl_runtime.authz import Rule
from xwl_runtime.clock import Clock, SystemClock
from xwl_runtime.component import Component
from xwl_runtime.heap import freeze_startup_heap
from xwl_runtime.identity import Identity
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.logs import log_serving
from xwl_runtime.metrics import MetricsListener, serve_metrics
from xwl_runtime.pki import PkiDir
from xwl_runtime.server import DEFAULT_GRACE_S, Listener, RunningServer, start_server, wait_for_termination_signal
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial

from .alerts import component as alerts_component
from .alerts.component import Alerts
from .authz import TABLE as AUTHZ_TABLE
from .catalog import component as catalog_component
from .catalog import digest_reporter
from .catalog.component import Catalog
from .catalog.snapshot import BeforeCommit
from .catalog.sync import SyncSettings
from .checkout import component as checkout_component
from .checkout.catalog_offers import CatalogImportedOffers
from .checkout.component import CheckoutConfig, Checkouts
from .context import NodeContext
from .cp_channel import CpChannel, cp_channel_factory
from .health import NodeHealth
from .identity import CertificateRenewer, load_or_enroll, renewal_component
from .lean import limit_malloc_arenas
from .operations.reporter import OperationsReporter
from .orders import component as orders_component
from .orders.catalog_stock import catalog_offer_stock
from .orders.component import Orders
from .orders.txn import TxRunner
from .peers import component as peers_component
from .peers.client import PeerConfig
from .peers.component import PeerClient
from .policy.agent import PolicyAgent
from .policy.checkpoint import CheckpointKeeper
from .policy.lkg import LastKnownGoodStore
from .policy.peer_guard import NodePeerGuard
from .policy.state import PolicyState
from .privacy.keys import node_keyring
from .risk import component as risk_component
from .risk.component import RiskComponent
from .rollout import component as rollout_component
from .settings import NodeSettings
from .store import open_store
from .storefront import component as storefront_component
from .storefront.component import Storefront
from .telemetry import component as telemetry_component
from .telemetry.component import TelemetryComponent
from .trader import component as trader_component
from .trader.component import Trader

log = logging.getLogger(__name__)

async def _load_tls(settings: NodeSettings) -> TlsMaterial | None:
    if settings.insecure_dev:
        return None
    return await load_or_enroll(settings)  # enrolls with the bootstrap token when no valid certificate exists


def _checkpoint_keeper(settings: NodeSettings, tls: TlsMaterial | None) -> CheckpointKeeper | None:
    """The keeper of the CP's signed audit head, checked against this node's CA (none without TLS)."""
    if tls is None:
        return None
    keeper = CheckpointKeeper(settings.state_dir, settings.wl_id, ca_public_key(tls.ca_pem))
    keeper.load()
    return keeper


def _no_checkpoint() -> audit_pb2.AuditCheckpoint | None:
    return None


@dataclass(frozen=True)
class NodeFeatures:
    """Every feature of a node, in the order they are built (each needs only those above it).

    telemetry → risk → orders → peers → catalog → trader → checkout → alerts → operations → flags → storefront
    → digests
    """

    telemetry: TelemetryComponent
    """Signed ledger events shipped to the CP (the order desk and the checkout enqueue them)."""
    risk: RiskComponent
    """Signals applied (``Enforcer``), the pair gate and the local imbalance guard."""
    orders: Orders
    """The exporter's order desk."""
    peers: PeerClient
    """The importer's trader client: tokens, channels, breakers."""
    catalog: Catalog
    """Exportable offers, the imported snapshot and its sync job."""
    trader: Trader
    """TraderService (peer API)."""
    checkouts: Checkouts
    """The importer's checkout, outbox and reconciler."""
    alerts: Alerts
    """The pair alert board."""
    operations: Component
    """Operation outcomes, breaker changes and offer views reported to the CP."""
    flags: Component
    """FeatureFlagService (local API): this WL's feature flags."""
    storefront: Storefront
    """StorefrontService (local API)."""
    digests: Component
    """Offer digests reported to the CP."""
    runner: Component
    """The transaction runner shared by the order desk and the checkout (closed on stop)."""

    @property
    def components(self) -> list[Component]:
        """Every component, in build order."""
        return [self.telemetry, self.risk, self.orders.component, self.peers.component, self.catalog.component,
                self.trader.component, self.checkouts.component, self.alerts.component, self.operations, self.flags,
                self.storefront.component, self.digests, self.runner]


def build_features(
    ctx: NodeContext,
    state: PolicyState,
    cp: CpChannel,
    *,
    audit_checkpoint: Callable[[], audit_pb2.AuditCheckpoint | None] = _no_checkpoint,
    sync_settings: SyncSettings | None = None,
    before_commit: BeforeCommit | None = None,
) -> NodeFeatures:
    """Every feature of a node, built in dependency order (``NodeFeatures``); nothing is attached later.

    ``sync_settings`` and ``before_commit`` (a failure hook of the catalog snapshot) are for tests and benches.

    The composition root's one place for that wiring; ``xcwl bench risk`` builds its 50 nodes' features with it.
    """
    settings = ctx.settings
    runner = TxRunner(settings.db_url)  # one transaction runner shared by the order desk and the checkout
    telemetry = telemetry_component.install(ctx, cp)
    kick = telemetry.shipper.kick
    runner.add_commit_listener(kick)  # events leave right after the transaction that wrote them: no polling
    risk = risk_component.install(ctx, state, cp, on_enqueued=kick)
    signal_gate = risk.gate.signal_gate
    orders = orders_component.install(ctx, state, catalog_offer_stock(clock=ctx.clock), runner=runner,
                                      signal_gate=signal_gate, guards=[risk.desk_guard])
    order_timeout = settings.order_timeout
    cadence = settings.cadence
    # The reconciler may only call a PENDING checkout in doubt long after its order's deadline has passed.
    config = CheckoutConfig(peers=PeerConfig(order_timeout_s=order_timeout.total_seconds(),
                                             channel_idle_s=cadence.peer_channel_idle_s),
                            in_doubt_after=max(dt.timedelta(seconds=2), 4 * order_timeout),
                            reconcile_interval_s=cadence.reconcile_busy_s, reconcile_idle_s=cadence.reconcile_idle_s,
                            outbox_idle_s=cadence.outbox_idle_s)
    peers = peers_component.install(ctx, state, cp, config.peers)

    def available(exporter: str) -> bool:
        # Unavailable while the checkout would refuse: circuit open, or the enforcer says no (pair paused/blocked
        # or direction disabled by signal, stale risk view).
        return peers.peers.available(exporter) and signal_gate(exporter, state.wl_id) is None

    catalog = catalog_component.build(ctx, state, availability=available, sync_settings=sync_settings,
                                      before_commit=before_commit)
    trader = trader_component.install(ctx, state, notifier=catalog.notifier, orders=orders.rpc,
                                      accounts=catalog.accounts)
    checkouts = checkout_component.install(
        ctx, state, peers, CatalogImportedOffers(catalog.view, state), runner=runner, config=config,
        signal_gate=signal_gate, import_guard=risk.guard,
    )
    alerts = alerts_component.install(ctx, risk.enforcer, state.wl_id)
    # Outcomes, breaker changes, offer views and sync lag levels, to the CP; signed with the events' key.
    reporter = OperationsReporter(cp, ctx.clock, sign=telemetry.shipper.sign_bytes)
    ctx.metrics.add_order_listener(reporter.order)
    ctx.metrics.add_breaker_listener(lambda peer, to: reporter.breaker(peer, to, f"circuit {to}"))
    reporter.track_sync(catalog.sync.lags)  # lag levels per exporter, sent when one changes
    catalog.sync.on_activity = reporter.sync_activity
    flags = rollout_component.install(ctx, state)
    storefront = storefront_component.install(ctx, state, catalog=catalog, checkouts=checkouts.rpc,
                                              alerts=alerts.rpc, enforcer=risk.enforcer,
                                              audit_checkpoint=audit_checkpoint, viewed=reporter.viewed)
    digests = digest_reporter.install(ctx.engine, state, cp, ctx.clock, catalog.notifier,
                                      settings.offer_digest_interval)
    return NodeFeatures(
        telemetry=telemetry, risk=risk, orders=orders, peers=peers, catalog=catalog, trader=trader,
        checkouts=checkouts, alerts=alerts, operations=Component(name="operations", loops=[reporter.run]),
        flags=flags, storefront=storefront, digests=digests,
        runner=Component(name="tx-runner", on_stop=[runner.close]),
    )


@dataclass
class NodeApp:
    """A running node: its server, policy state and agent, and the loops to stop."""

    settings: NodeSettings
    ctx: NodeContext
    state: PolicyState
    agent: PolicyAgent
    health: NodeHealth
    server: RunningServer
    cp: CpChannel
    components: list[Component]
    server_credentials: ReloadableServerCredentials | None
    features: NodeFeatures
    lifecycle: Lifecycle
    metrics_listener: MetricsListener | None = None

    @property
    def port(self) -> int:
        """The bound port of the node's listener."""
        return self.server.port

    @property
    def engine(self) -> AsyncEngine:
        return self.ctx.engine

    @property
    def checkouts(self) -> Checkouts:
        """The importer side (tests and the SDK's examples reach the token cache and the service here)."""
        return self.features.checkouts

    async def on_rotate(self, material: TlsMaterial) -> None:
        """Certificate rotation: serve the new key pair on new handshakes and move CP calls to a new channel."""
        if self.server_credentials is not None:
            self.server_credentials.update(material.pair)
        self.cp.replace(material)
        self.features.peers.on_rotate(material)

    async def stop(self, grace: float = DEFAULT_GRACE_S) -> None:
        """NOT_SERVING at once, let in-flight RPCs finish for ``grace`` seconds, then stop loops and close
        (``xwl_runtime.lifecycle``)."""
        await self.lifecycle.stop(grace)


async def build_node(
    settings: NodeSettings,
    clock: Clock | None = None,
    *,
    extra_components: Sequence[Component] = (),
    extra_authz: Mapping[str, Rule] | None = None,
) -> NodeApp:
    """Build and start a node; ``extra_components`` and their ``extra_authz`` rules let tests add services (the
    root itself lists features; ``wl_node/authz.py`` is the node's table)."""
    extra_authz = extra_authz or {}
    clock = clock or SystemClock()
    engine = await open_store(settings.db_url, settings.wl_id, migrate_in_process=not settings.migrate_in_child)
    cp: CpChannel | None = None
    server: RunningServer | None = None
    app: NodeApp | None = None
    try:
        tls = await _load_tls(settings)
        ctx = NodeContext(settings=settings, engine=engine, clock=clock, tls=tls, keyring=node_keyring(settings))
        state = PolicyState(settings.wl_id, clock, settings.policy_max_staleness)
        cp = CpChannel(
            cp_channel_factory(settings.cp_target, reconnect_cap_s=settings.reconnect_cap.total_seconds()),
            tls,
            identity=Identity.wl(settings.wl_id),
        )
        agent = PolicyAgent(settings, state, cp, clock, LastKnownGoodStore(settings.state_dir, settings.wl_id),
                            checkpoints=_checkpoint_keeper(settings, tls))
        await agent.load_last_known_good()  # before any CP contact: a restart with the CP down serves this

        keeper = agent.checkpoints
        features = build_features(ctx, state, cp,
                                  audit_checkpoint=(lambda: keeper.kept) if keeper is not None else _no_checkpoint)
        components = [*features.components, *extra_components]
        renewer: CertificateRenewer | None = None
        if tls is not None:
            renewer = CertificateRenewer(
                pki=PkiDir(settings.pki_dir), wl_id=settings.wl_id, cp_target=settings.cp_target, material=tls,
                clock=clock,
            )
            components.append(renewal_component(renewer))
        credentials = ReloadableServerCredentials(tls) if tls is not None else None
        server = await start_server(
            registrations=[r for c in components for r in c.registrations],
            service_names=[s for c in components for s in c.service_names],
            listeners=[Listener(settings.listen, credentials.credentials if credentials else None,
                                max_receive_bytes=settings.max_receive_bytes)],
            authz_table={**AUTHZ_TABLE, **extra_authz},
            local_wl=settings.wl_id,
            insecure_dev=settings.insecure_dev,
            serving=False,
            peer_guard=NodePeerGuard(state),
            metrics=ctx.metrics.rpc,
        )
        health = NodeHealth(state, server.set_serving, interval_s=settings.cadence.health_s, clock=clock)
        agent.add_observer(health.evaluate)
        await health.evaluate()
        lifecycle = Lifecycle(server, components, closers=[cp.close, engine.dispose])
        app = NodeApp(
            settings=settings, ctx=ctx, state=state, agent=agent, health=health, server=server, cp=cp,
            components=components, server_credentials=credentials, features=features, lifecycle=lifecycle,
        )
        if renewer is not None:
            renewer.on_rotate(app.on_rotate)  # server credentials + CP channel follow every renewal
        lifecycle.start_loops([agent.run, health.run, *(loop for c in components for loop in c.loops)])
        ctx.metrics.track_policy(lambda: state.version, lambda: _view_age_s(state, clock))
        await _track_exporters(state, ctx)
        if settings.metrics_listen:
            listener = app.metrics_listener = serve_metrics(settings.metrics_listen, ctx.metrics.registry)
            lifecycle.add_closer(lambda: asyncio.to_thread(listener.close))
    except BaseException:
        if app is not None:
            await app.stop(0)
            raise
        if server is not None:
            await server.stop(0)
        if cp is not None:
            await cp.close()
        await engine.dispose()
        raise
    listeners = {"mtls": f"{settings.listen.rpartition(':')[0]}:{server.port}"}
    if app.metrics_listener is not None:
        listeners["metrics"] = f"{settings.metrics_listen.rpartition(':')[0]}:{app.metrics_listener.port}"
    log_serving("WL node", listeners=listeners, store_url=settings.db_url, wl_id=settings.wl_id,
                policy_version=state.version)
    return app


def _view_age_s(state: PolicyState, clock: Clock) -> float:
    """Seconds since the CP last confirmed the applied view (0 before any view)."""
    confirmed = state.confirmed_at
    return 0.0 if confirmed is None else max(0.0, (clock.now() - confirmed).total_seconds())


async def _track_exporters(state: PolicyState, ctx: NodeContext) -> None:
    """Keep the metrics' per-exporter series in step with the exporters the policy view lets this node buy from."""

    async def on_view(view: policy_pb2.PolicyView) -> None:
        ctx.metrics.know_exporters(
            d.exporter_wl for pair in view.pairs for d in pair.directions if d.importer_wl == state.wl_id)

    state.add_listener(on_view)
    current = state.current()
    if current is not None:
        await on_view(current)


async def run_node(settings: NodeSettings) -> None:
    """Serve until SIGTERM or SIGINT, then drain gracefully."""
    limit_malloc_arenas()  # before the server and store start their threads
    app = await build_node(settings)
    freeze_startup_heap()
    try:
        await wait_for_termination_signal()
        log.info("termination signal received; draining", extra={"fields": {"grace_s": DEFAULT_GRACE_S}})
    finally:
        await app.stop(DEFAULT_GRACE_S)
