"""The trader client: how this WL node calls peer exporters' TraderService order RPCs.

Per exporter it keeps one mTLS channel (target from the policy view's WL registry, rebuilt when the endpoint
changes or the node's certificate rotates), one ``AsyncCircuitBreaker`` and one ``RetryBudget``. Every call:

* carries the cached JWT for that exporter (``TokenCache.get``; never fetched on this path), the correlation id
  and, in ``--insecure-dev``, the dev identity header;
* has an explicit deadline: the caller's ``Deadline`` (its remaining time), each attempt getting what is left
  minus a margin;
* is retried only on UNAVAILABLE and DEADLINE_EXCEEDED (safe: every order RPC carries an idempotency key or is
  a read) with exponential backoff, full jitter, at most ``max_attempts`` and while the budget has tokens;
* goes through the exporter's breaker per attempt: transport failures (UNAVAILABLE, DEADLINE_EXCEEDED) count,
  business answers from a healthy peer do not. Open → ``PeerUnavailable`` at once, without a call.

``available(exporter)`` is the callable the catalog reads to show an exporter's imported offers as temporarily
unavailable while its circuit is open; ``add_availability_listener`` notifies changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from wl_node.metrics import NodeMetrics
from wl_node.policy.state import PolicyState
from xporty.trader.v1 import order_pb2
from xporty.trader.v1 import trader_service_pb2 as pb
from xporty.trader.v1 import trader_service_pb2_grpc as pb_grpc
from xwl_runtime import correlation
from xwl_runtime.breaker import AsyncCircuitBreaker, BreakerState, CircuitOpenError
from xwl_runtime.clock import Clock, SystemClock
from xwl_runtime.errors import RemoteError, Unavailable, decode_rpc_error
from xwl_runtime.grpc_codes import TRANSIENT
from xwl_runtime.identity import Identity
from xwl_runtime.pipeline import DEV_IDENTITY_METADATA_KEY
from xwl_runtime.retry import Deadline, DeadlineExhausted, RetryBudget, RetryPolicy, call_with_retries
from xwl_runtime.tls import TlsMaterial, secure_channel
from xwl_runtime.tokens import bearer_metadata

from .tokens import TokenCache

log = logging.getLogger(__name__)
T = TypeVar("T")

_ORDER_OUTCOME = {order_pb2.ORDER_STATUS_CONFIRMED: "confirmed", order_pb2.ORDER_STATUS_DENIED: "denied",
                  order_pb2.ORDER_STATUS_CANCELLED: "cancelled"}
AvailabilityListener = Callable[[str, bool], None]


@dataclass(frozen=True)
class PeerConfig:
    """Knobs of the trader client, with their defaults."""

    order_timeout_s: float = 0.3
    """Deadline of one order operation (all attempts) when the caller has more time than this."""
    max_attempts: int = 3
    base_backoff_s: float = 0.01
    max_backoff_s: float = 0.1
    breaker_fail_max: int = 5
    """Consecutive transport failures that open an exporter's circuit."""
    breaker_reset_s: float = 2.0
    """How long a circuit stays open before one half-open probe is let through."""
    budget_ratio: float = 0.2
    budget_max_tokens: float = 20.0
    channel_idle_s: float = 120.0
    """An order channel with no RPC for this long drops its connection (no keepalive pings, no TLS state); the
    next order reconnects. The channel itself is made on the first order to that exporter."""
    max_orders_in_flight: int = 16
    """PlaceOrders outstanding at one exporter (a bulkhead, ``order_slot``): further checkouts wait for a slot
    before their PENDING row and their order deadline exist, with nothing stored or sent. Without it, a burst puts
    every order in the exporter's (and this node's) queues at once, the queueing eats the 300 ms order deadline,
    orders go in doubt and the breaker opens."""


@dataclass(frozen=True)
class PeerError(RemoteError):
    """The exporter's answer to an order RPC (a refusal), or the transport failure left after the retries: the
    ``grpc.aio.AioRpcError`` decoded once here (code, ErrorInfo reason and metadata), so callers never handle grpc's
    error type themselves."""

    exporter_wl: str = ""


class PeerUnavailable(Unavailable):
    """The exporter cannot be called now (circuit open, no token, no endpoint, no time left).

    ``sent`` tells whether an earlier attempt of the same operation may have reached the exporter (the outcome is
    then in doubt); False means nothing was sent.
    """

    sent: bool = False


@dataclass
class _Peer:
    exporter_wl: str
    target: str
    channel: grpc.aio.Channel
    stub: pb_grpc.TraderServiceStub
    breaker: AsyncCircuitBreaker
    budget: RetryBudget = field(default_factory=RetryBudget)


def _is_transport_failure(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in TRANSIENT


class TraderPeers:
    """Channels, breakers and budgets per exporter; the three order calls."""

    def __init__(
        self,
        state: PolicyState,
        tls: TlsMaterial | None,
        tokens: TokenCache,
        *,
        identity: Identity,
        config: PeerConfig | None = None,
        clock: Clock | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._state = state
        self._tls = tls
        self._tokens = tokens
        self._identity = identity
        self.config = config or PeerConfig()
        self._clock = clock or SystemClock()
        self._policy = RetryPolicy(
            max_attempts=self.config.max_attempts, base_backoff_s=self.config.base_backoff_s,
            max_backoff_s=self.config.max_backoff_s, retryable=TRANSIENT,
        )
        self._peers: dict[str, _Peer] = {}
        self._breakers: dict[str, AsyncCircuitBreaker] = {}
        self._listeners: list[AvailabilityListener] = []
        self._old_channels: list[grpc.aio.Channel] = []
        self._slots: dict[str, asyncio.Semaphore] = {}

    # --- availability --------------------------------------------------------------------------------------
    def breaker(self, exporter_wl: str) -> AsyncCircuitBreaker:
        b = self._breakers.get(exporter_wl)
        if b is None:
            b = AsyncCircuitBreaker(
                f"trader:{exporter_wl}", fail_max=self.config.breaker_fail_max,
                reset_timeout_s=self.config.breaker_reset_s, is_failure=_is_transport_failure, clock=self._clock,
                on_state_change=self._state_changed,
            )
            self._breakers[exporter_wl] = b
        return b

    def available(self, exporter_wl: str) -> bool:
        """False while the exporter's circuit is open (the catalog shows its offers as unavailable)."""
        b = self._breakers.get(exporter_wl)
        return b is None or b.state is not BreakerState.OPEN

    def add_availability_listener(self, listener: AvailabilityListener) -> None:
        self._listeners.append(listener)

    def _state_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        exporter = name.split(":", 1)[1]
        if self._metrics is not None:
            self._metrics.breaker_changed(exporter, new)
        for listener in list(self._listeners):
            listener(exporter, new is not BreakerState.OPEN)

    def ensure_callable(self, exporter_wl: str) -> None:
        """``PeerUnavailable`` when a call would fail fast: circuit open or no valid token."""
        b = self.breaker(exporter_wl)
        if b.state is BreakerState.OPEN:
            raise PeerUnavailable(f"exporter {exporter_wl} is unreachable (circuit open)", reason="CIRCUIT_OPEN",
                                  metadata={"exporter_wl": exporter_wl})
        if self._tokens.get(exporter_wl) is None:
            raise PeerUnavailable(f"no valid token for exporter {exporter_wl} yet", reason="TOKEN_UNAVAILABLE",
                                  metadata={"exporter_wl": exporter_wl})

    # --- channels ------------------------------------------------------------------------------------------
    def _peer(self, exporter_wl: str) -> _Peer:
        wl = self._state.white_label(exporter_wl)
        if wl is None or not wl.trader_endpoint:
            raise PeerUnavailable(f"no endpoint known for {exporter_wl}", reason="NO_ENDPOINT",
                                  metadata={"exporter_wl": exporter_wl})
        peer = self._peers.get(exporter_wl)
        if peer is not None and peer.target == wl.trader_endpoint:
            return peer
        if peer is not None:
            self._retire(peer.channel)
        # The endpoint comes from the CP's view; the handshake must prove the WL registered for it.
        channel = secure_channel(
            wl.trader_endpoint, self._tls, expected=Identity.wl(exporter_wl),
            extra_options=[("grpc.client_idle_timeout_ms", int(self.config.channel_idle_s * 1000))],
            interceptors=[self._metrics.rpc.client_interceptor()] if self._metrics else (),
        )
        peer = _Peer(exporter_wl, wl.trader_endpoint, channel, pb_grpc.TraderServiceStub(channel),
                     self.breaker(exporter_wl),
                     RetryBudget(ratio=self.config.budget_ratio, max_tokens=self.config.budget_max_tokens,
                                 tokens=self.config.budget_max_tokens))
        self._peers[exporter_wl] = peer
        return peer

    def channel_state(self, exporter_wl: str) -> grpc.ChannelConnectivity | None:
        """The connectivity of the order channel to ``exporter_wl``; None while none was made (before the first
        order). IDLE once its connection was dropped after ``channel_idle_s`` without an order."""
        peer = self._peers.get(exporter_wl)
        return None if peer is None else peer.channel.get_state()

    def _retire(self, channel: grpc.aio.Channel) -> None:
        # In-flight calls keep the old channel alive; it is closed after a grace period.
        async def later() -> None:
            await asyncio.sleep(5.0)
            await channel.close()

        task = asyncio.get_running_loop().create_task(later())
        self._old_channels.append(channel)
        task.add_done_callback(lambda _t: self._old_channels.remove(channel))

    def on_rotate(self, material: TlsMaterial) -> None:
        """Certificate rotation: new channels for new calls, old ones drained."""
        self._tls = material
        for peer in list(self._peers.values()):
            self._retire(peer.channel)
        self._peers.clear()

    async def close(self) -> None:
        for peer in self._peers.values():
            await peer.channel.close()
        for ch in list(self._old_channels):
            await ch.close()
        self._peers.clear()

    # --- calls ---------------------------------------------------------------------------------------------
    @asynccontextmanager
    async def order_slot(self, exporter_wl: str, wait_s: float | None = None) -> AsyncIterator[None]:
        """Hold one of the exporter's ``max_orders_in_flight`` PlaceOrder slots (FIFO).

        Waiting sends nothing; if no slot frees up within ``wait_s`` (the caller's remaining time) this raises
        ``PeerUnavailable`` ``EXPORTER_BUSY`` with ``sent`` False.
        """
        slots = self._slots.get(exporter_wl)
        if slots is None:
            slots = self._slots[exporter_wl] = asyncio.Semaphore(self.config.max_orders_in_flight)
        if not slots.locked():
            await slots.acquire()  # free slot: returns at once
        else:
            try:
                await asyncio.wait_for(slots.acquire(), wait_s)
            except TimeoutError:
                raise PeerUnavailable(f"too many orders in flight to {exporter_wl}; no time left to wait",
                                      reason="EXPORTER_BUSY", metadata={"exporter_wl": exporter_wl}) from None
        try:
            yield
        finally:
            slots.release()

    def deadline(self, caller_remaining_s: float | None = None) -> Deadline:
        """The deadline of one order operation: the configured timeout, shortened to the caller's remaining time."""
        budget = self.config.order_timeout_s
        if caller_remaining_s is not None:
            budget = min(budget, caller_remaining_s - self._policy.margin_s)
        return Deadline.after(max(0.0, budget))

    def _metadata(self, exporter_wl: str) -> tuple[tuple[str, str], ...]:
        token = self._tokens.get(exporter_wl)
        if token is None:
            raise PeerUnavailable(f"no valid token for exporter {exporter_wl}", reason="TOKEN_UNAVAILABLE",
                                  metadata={"exporter_wl": exporter_wl})
        meta = (*correlation.outbound_metadata(), *bearer_metadata(token))
        if self._tls is None:
            meta = (*meta, (DEV_IDENTITY_METADATA_KEY, self._identity.spiffe_id))
        return meta

    async def _call(
        self, exporter_wl: str, deadline: Deadline, invoke: Callable[[_Peer, float, Any], Awaitable[T]]
    ) -> T:
        peer = self._peer(exporter_wl)
        metadata = self._metadata(exporter_wl)

        attempts = 0

        async def attempt(timeout: float) -> T:
            nonlocal attempts
            probe = peer.breaker.call(lambda: invoke(peer, timeout, metadata))
            attempts += 1  # counted before the await: from here on the request may reach the exporter
            return await probe

        try:
            return await call_with_retries(attempt, deadline=deadline, policy=self._policy, budget=peer.budget)
        except grpc.aio.AioRpcError as err:
            remote = decode_rpc_error(err)
            raise PeerError(remote.code, remote.message, remote.reason, remote.metadata,
                            exporter_wl=exporter_wl) from err
        except CircuitOpenError as err:
            attempts -= 1  # the refused attempt sent nothing
            failure = PeerUnavailable(f"exporter {exporter_wl} is unreachable (circuit open)",
                                      reason="CIRCUIT_OPEN", metadata={"exporter_wl": exporter_wl})
            failure.sent = attempts > 0
            raise failure from err
        except DeadlineExhausted as err:
            failure = PeerUnavailable("no time left for the call", reason="DEADLINE_EXHAUSTED",
                                      metadata={"exporter_wl": exporter_wl})
            failure.sent = attempts > 0
            raise failure from err

    async def place_order(self, exporter_wl: str, request: pb.PlaceOrderRequest, deadline: Deadline
                          ) -> order_pb2.Order:
        """PlaceOrder; raises ``PeerError`` (answer or transport) or ``PeerUnavailable`` (not sent)."""
        async def invoke(peer: _Peer, timeout: float, metadata: Any) -> order_pb2.Order:
            response: pb.PlaceOrderResponse = await peer.stub.PlaceOrder(request, timeout=timeout, metadata=metadata)
            return response.order

        if self._metrics is None:
            return await self._call(exporter_wl, deadline, invoke)
        started = time.perf_counter()
        try:
            order = await self._call(exporter_wl, deadline, invoke)
        except PeerUnavailable:
            self._metrics.order(exporter_wl, "unavailable", None)
            raise
        except PeerError as err:
            answered = err.code not in TRANSIENT
            self._metrics.order(exporter_wl, "refused" if answered else "error",
                                time.perf_counter() - started if answered else None)
            raise
        self._metrics.order(exporter_wl, _ORDER_OUTCOME.get(order.status, "error"), time.perf_counter() - started)
        return order

    async def get_order(self, exporter_wl: str, request: pb.GetOrderRequest, deadline: Deadline) -> order_pb2.Order:
        async def invoke(peer: _Peer, timeout: float, metadata: Any) -> order_pb2.Order:
            response: pb.GetOrderResponse = await peer.stub.GetOrder(request, timeout=timeout, metadata=metadata)
            return response.order

        return await self._call(exporter_wl, deadline, invoke)

    async def cancel_order(self, exporter_wl: str, request: pb.CancelOrderRequest, deadline: Deadline
                           ) -> order_pb2.Order:
        async def invoke(peer: _Peer, timeout: float, metadata: Any) -> order_pb2.Order:
            response: pb.CancelOrderResponse = await peer.stub.CancelOrder(request, timeout=timeout, metadata=metadata)
            return response.order

        return await self._call(exporter_wl, deadline, invoke)
