"""Building, starting and draining a grpc.aio server the same way in every process.

Every server gets grpc.health.v1 (with Watch), reflection (v1 and v1alpha, with comments: ``reflection``), the
keepalive constants of ``tls`` and the ``ServerPipeline``; ``serve_until_signalled`` drains it gracefully on
SIGTERM/SIGINT.

Message size limits are a property of each ``Listener``. gRPC applies them per server, not per port, so listeners
with different limits are served by separate grpc.aio servers in the same process, sharing the services, the
health servicer and the ``Admission`` (one budget per caller whichever port it uses).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from . import tracing
from .authz import Rule, check_complete
from .metrics import RpcMetrics
from .peer_guard import PeerGuard
from .pipeline import ServerPipeline
from .ratelimit import Admission
from .reflection import add_reflection, default_index
from .tls import DEFAULT_SERVER_RECEIVE_BYTES, DEFAULT_SERVER_SEND_BYTES, SERVER_OPTIONS, server_message_options

log = logging.getLogger(__name__)

Registration = Callable[[grpc.aio.Server], None]
DEFAULT_GRACE_S = 5.0


@dataclass(frozen=True)
class Listener:
    """One address the server listens on, with its credentials (None = plaintext, ``--insecure-dev`` only)."""

    address: str
    credentials: grpc.ServerCredentials | None
    max_receive_bytes: int = DEFAULT_SERVER_RECEIVE_BYTES
    """Largest request message accepted; a larger one is refused by gRPC core (RESOURCE_EXHAUSTED) unread."""
    max_send_bytes: int = DEFAULT_SERVER_SEND_BYTES
    """Largest response message sent."""


@dataclass
class RunningServer:
    """A started server, its bound ports (in listener order) and its health servicer.

    ``server`` serves the first listener; ``others`` the listeners whose message limits differ from it.
    """

    server: grpc.aio.Server
    ports: list[int]
    health: HealthServicer
    service_names: Sequence[str] = field(default_factory=tuple)
    others: Sequence[grpc.aio.Server] = field(default_factory=tuple)

    @property
    def port(self) -> int:
        return self.ports[0]

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set("", status)
        for name in self.service_names:
            await self.health.set(name, status)

    async def stop(self, grace: float = DEFAULT_GRACE_S) -> None:
        """Announce NOT_SERVING, then let in-flight RPCs finish for up to ``grace`` seconds."""
        await self.health.enter_graceful_shutdown()
        await asyncio.gather(*(s.stop(grace) for s in (self.server, *self.others)))


async def start_server(
    *,
    registrations: Sequence[Registration],
    service_names: Sequence[str],
    listeners: Sequence[Listener],
    authz_table: Mapping[str, Rule],
    insecure_dev: bool = False,
    serving: bool = True,
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    peer_guard: PeerGuard | None = None,
    admission: Admission | None = None,
    metrics: RpcMetrics | None = None,
    local_wl: str | None = None,
) -> RunningServer:
    """Build and start a server. ``serving`` is the initial health status of every service.

    ``peer_guard`` refuses revoked (or unrecorded) client certificates on every RPC; ``admission``: per-caller rate
    limits and stream caps applied by the pipeline before any servicer runs.
    ``metrics``: RPC latency histograms, measured by the pipeline (refusals included). While tracing is on
    (``tracing.configure_tracing``) the OpenTelemetry interceptor is the outermost, so its span is current for
    everything after it.
    ``authz_table`` must hold a rule for every method of ``service_names`` (and health, reflection), or the
    server refuses to start (``authz.AuthzTableError``); ``local_wl``: the WL a node serves, for rules open only
    to that WL's apps.
    """
    if not listeners:
        raise ValueError("a server needs at least one listener")
    check_complete(authz_table, service_names, local_wl=local_wl)
    health = HealthServicer()
    reflection_index = default_index  # built by the first reflection request, once per process
    servers: dict[tuple[int, int], grpc.aio.Server] = {}
    ports: list[int] = []
    for listener in listeners:
        limits = (listener.max_receive_bytes, listener.max_send_bytes)
        server = servers.get(limits)
        if server is None:
            server = servers[limits] = grpc.aio.server(
                interceptors=[*tracing.server_interceptors(),
                              ServerPipeline(authz_table, insecure_dev=insecure_dev, peer_guard=peer_guard,
                                             admission=admission,
                                             latency=metrics.server_seconds if metrics is not None else None,
                                             local_wl=local_wl),
                              *extra_interceptors],
                options=[*SERVER_OPTIONS, *server_message_options(*limits)],
            )
            for register in registrations:
                register(server)
            health_pb2_grpc.add_HealthServicer_to_server(health, server)
            add_reflection(
                server, (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), reflection_index
            )
        if listener.credentials is None:
            if not insecure_dev:
                raise ValueError(f"plaintext listener {listener.address} needs --insecure-dev")
            ports.append(server.add_insecure_port(listener.address))
        else:
            ports.append(server.add_secure_port(listener.address, listener.credentials))
    first, *others = servers.values()
    for server in servers.values():
        await server.start()
    running = RunningServer(first, ports, health, tuple(service_names), others=tuple(others))
    await running.set_serving(serving)
    return running


async def wait_for_termination_signal() -> None:
    """Return on SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
