"""Composition root of a WL node: builds every dependency from ``NodeSettings`` and runs one server.

Order of start-up (each step needs the previous one)::

    store (migrations, engine, claim) → TLS material → PolicyState + last-known-good view → CP channel + policy agent
    → feature components → one gRPC server (NOT_SERVING) → health from the view's freshness → background loops

The node therefore serves its persisted view before it has reached the CP, and reports NOT_SERVING until a view
is present and fresh. ``run_node`` serves until SIGTERM/SIGINT, then drains in-flight RPCs for the grace period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from xwl_runtime.authz import Rule, table
from xwl_runtime.clock import Clock, SystemClock
from xwl_runtime.component import BackgroundLoop, Component
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir
from xwl_runtime.server import DEFAULT_GRACE_S, Listener, RunningServer, start_server, wait_for_termination_signal
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial

from .context import NodeContext
from .cp_channel import CpChannel, cp_channel_factory
from .health import NodeHealth
from .identity import CertificateRenewer, load_or_enroll, renewal_component
from .policy.agent import PolicyAgent
from .policy.lkg import LastKnownGoodStore
from .policy.state import PolicyState
from .settings import NodeSettings
from .store import open_store

log = logging.getLogger(__name__)

LOOP_STOP_TIMEOUT_S = 5.0
"""How long background loops get to return after the stop signal before they are cancelled."""


async def _load_tls(settings: NodeSettings) -> TlsMaterial | None:
    if settings.insecure_dev:
        return None
    return await load_or_enroll(settings)  # enrolls with the bootstrap token when no valid certificate exists


def _feature_components(ctx: NodeContext, state: PolicyState) -> list[Component]:
    """Every feature served by the node; adding a feature is one line here."""
    components: list[Component] = []
    # INTEGRATOR: when wl_node/catalog/component.py exists, add:
    #   from wl_node.catalog.component import install as install_catalog
    #   components.append(install_catalog(ctx, state))
    return components


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
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopped: bool = False

    @property
    def port(self) -> int:
        """The bound port of the node's listener."""
        return self.server.port

    @property
    def engine(self) -> AsyncEngine:
        return self.ctx.engine

    def start_loops(self, loops: Sequence[BackgroundLoop]) -> None:
        for loop in loops:
            task = asyncio.create_task(loop(self._stop), name=getattr(loop, "__qualname__", "loop"))
            task.add_done_callback(_log_loop_end)
            self._tasks.append(task)

    async def on_rotate(self, material: TlsMaterial) -> None:
        """Certificate rotation: serve the new key pair on new handshakes and move CP calls to a new channel."""
        if self.server_credentials is not None:
            self.server_credentials.update(material.pair)
        self.cp.replace(material)

    async def stop(self, grace: float = DEFAULT_GRACE_S) -> None:
        """NOT_SERVING at once, let in-flight RPCs finish for ``grace`` seconds, then stop loops and close."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        await self.server.stop(grace)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=LOOP_STOP_TIMEOUT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for component in self.components:
            for on_stop in component.on_stop:
                await on_stop()
        await self.cp.close()
        await self.ctx.engine.dispose()


def _log_loop_end(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    err = task.exception()
    if err is not None:
        log.error("background loop crashed", exc_info=err, extra={"fields": {"loop": task.get_name()}})


async def build_node(
    settings: NodeSettings,
    clock: Clock | None = None,
    *,
    extra_components: Sequence[Component] = (),
) -> NodeApp:
    """Build and start a node; ``extra_components`` lets tests add services (the root itself lists features)."""
    clock = clock or SystemClock()
    engine = await open_store(settings.db_url, settings.wl_id)
    cp: CpChannel | None = None
    server: RunningServer | None = None
    try:
        tls = await _load_tls(settings)
        ctx = NodeContext(settings=settings, engine=engine, clock=clock, tls=tls)
        state = PolicyState(settings.wl_id, clock, settings.policy_max_staleness)
        cp = CpChannel(
            cp_channel_factory(settings.cp_target, reconnect_cap_s=settings.reconnect_cap.total_seconds()),
            tls,
            identity=Identity.wl(settings.wl_id),
        )
        agent = PolicyAgent(settings, state, cp, clock, LastKnownGoodStore(settings.state_dir, settings.wl_id))
        await agent.load_last_known_good()  # before any CP contact: a restart with the CP down serves this

        components = [*_feature_components(ctx, state), *extra_components]
        renewer: CertificateRenewer | None = None
        if tls is not None:
            renewer = CertificateRenewer(
                pki=PkiDir(settings.pki_dir), wl_id=settings.wl_id, cp_target=settings.cp_target, material=tls,
                clock=clock,
            )
            components.append(renewal_component(renewer))
        authz: dict[str, Rule] = {}
        for component in components:
            authz.update(component.authz)
        credentials = ReloadableServerCredentials(tls) if tls is not None else None
        server = await start_server(
            registrations=[r for c in components for r in c.registrations],
            service_names=[s for c in components for s in c.service_names],
            listeners=[Listener(settings.listen, credentials.credentials if credentials else None)],
            authz_table=table(authz),
            insecure_dev=settings.insecure_dev,
            serving=False,
        )
        health = NodeHealth(state, server.set_serving)
        agent.add_observer(health.evaluate)
        await health.evaluate()
        app = NodeApp(
            settings=settings, ctx=ctx, state=state, agent=agent, health=health, server=server, cp=cp,
            components=components, server_credentials=credentials,
        )
        if renewer is not None:
            renewer.on_rotate(app.on_rotate)  # server credentials + CP channel follow every renewal
        app.start_loops([agent.run, health.run, *(loop for c in components for loop in c.loops)])
    except BaseException:
        if server is not None:
            await server.stop(0)
        if cp is not None:
            await cp.close()
        await engine.dispose()
        raise
    log.info("WL node started", extra={"fields": {"wl_id": settings.wl_id, "port": server.port,
                                                  "policy_version": state.version}})
    return app


async def run_node(settings: NodeSettings) -> None:
    """Serve until SIGTERM or SIGINT, then drain gracefully."""
    app = await build_node(settings)
    try:
        await wait_for_termination_signal()
        log.info("termination signal received; draining", extra={"fields": {"grace_s": DEFAULT_GRACE_S}})
    finally:
        await app.stop(DEFAULT_GRACE_S)
