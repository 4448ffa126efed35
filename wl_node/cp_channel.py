"""The node's channel to the CP, replaceable when the node's certificate rotates.

grpcio clients cannot reload their certificate, so on rotation ``replace`` builds a new channel from the new
material and makes it current; the old channel is closed once the calls that leased it have finished (bounded by
``drain_timeout_s``). Long-lived streams register a rotation listener and reopen themselves on the new channel.

Every caller uses ``lease()`` for the duration of one call::

    async with cp.lease() as channel:
        await PolicyServiceStub(channel).GetPolicies(req, timeout=..., metadata=cp.metadata())
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc

from xwl_runtime import correlation
from xwl_runtime.identity import Identity
from xwl_runtime.pipeline import DEV_IDENTITY_METADATA_KEY
from xwl_runtime.tls import TlsMaterial, secure_channel

log = logging.getLogger(__name__)

ChannelFactory = Callable[[TlsMaterial | None], grpc.aio.Channel]
RotationListener = Callable[[], None]
DRAIN_TIMEOUT_S = 30.0


def cp_channel_factory(target: str, *, reconnect_cap_s: float) -> ChannelFactory:
    """Channels to ``target`` that accept only the CP's identity, with the reconnect backoff capped like the agent's.

    Without this, a channel in TRANSIENT_FAILURE fails every call fast until gRPC's own backoff expires, and the
    pull fallback could not reach a CP that came back within one TTL.
    """
    cap_ms = max(50, int(reconnect_cap_s * 1000))
    options = (
        ("grpc.initial_reconnect_backoff_ms", min(200, cap_ms)),
        ("grpc.max_reconnect_backoff_ms", cap_ms),
    )

    def factory(material: TlsMaterial | None) -> grpc.aio.Channel:
        return secure_channel(target, material, expected=Identity.cp(), extra_options=options)

    return factory


@dataclass
class _Generation:
    channel: grpc.aio.Channel
    leases: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class CpChannel:
    """The current channel to the CP, leased per call, swapped on certificate rotation."""

    def __init__(
        self,
        factory: ChannelFactory,
        material: TlsMaterial | None,
        *,
        identity: Identity,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
    ) -> None:
        self._factory = factory
        self._identity = identity
        self._insecure = material is None
        self._drain_timeout_s = drain_timeout_s
        self._current = self._new_generation(material)
        self._listeners: list[RotationListener] = []
        self._draining: set[asyncio.Task[None]] = set()
        self._closed = False

    def _new_generation(self, material: TlsMaterial | None) -> _Generation:
        gen = _Generation(self._factory(material))
        gen.idle.set()
        return gen

    @property
    def channel(self) -> grpc.aio.Channel:
        """The current channel (prefer ``lease`` so rotation can wait for the call)."""
        return self._current.channel

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata for every call: the correlation id, and in --insecure-dev the identity the CP cannot see."""
        meta = correlation.outbound_metadata()
        if self._insecure:
            meta = (*meta, (DEV_IDENTITY_METADATA_KEY, self._identity.spiffe_id))
        return meta

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[grpc.aio.Channel]:
        """The current channel, kept open until the block exits even if a rotation happens meanwhile."""
        if self._closed:
            raise RuntimeError("CP channel is closed")
        gen = self._current
        gen.leases += 1
        gen.idle.clear()
        try:
            yield gen.channel
        finally:
            gen.leases -= 1
            if gen.leases == 0:
                gen.idle.set()

    def add_rotation_listener(self, listener: RotationListener) -> None:
        """``listener()`` runs right after a new channel became current (streams reopen on it)."""
        self._listeners.append(listener)

    def replace(self, material: TlsMaterial | None) -> None:
        """Switch to a channel built from ``material``; drain and close the old one in the background."""
        if self._closed:
            return
        old = self._current
        self._current = self._new_generation(material)
        log.info("CP channel replaced after certificate rotation")
        for listener in list(self._listeners):
            listener()
        task = asyncio.get_running_loop().create_task(self._drain(old))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def on_rotate(self, material: TlsMaterial) -> None:
        """The callback a certificate renewer calls with the new key pair."""
        self.replace(material)

    async def _drain(self, gen: _Generation) -> None:
        try:
            await asyncio.wait_for(gen.idle.wait(), self._drain_timeout_s)
        except TimeoutError:
            log.warning("old CP channel still busy after drain timeout; closing it",
                        extra={"fields": {"leases": gen.leases}})
        finally:  # also when close() cancels the drain
            await gen.channel.close()

    async def close(self) -> None:
        """Close the current channel and any still draining."""
        self._closed = True
        for task in list(self._draining):
            task.cancel()
        await asyncio.gather(*self._draining, return_exceptions=True)
        await self._current.channel.close()
