"""The importer's cache of peer tokens: fetched from the CP ahead of time so a checkout never waits on the CP.

``token_for(exporter)`` never does I/O: it returns a cached token with at least ``min_remaining`` left, or None.
The ``run`` loop keeps a token warm for every exporter in ``want(...)`` (normally: the partners the policy view
lets this WL import from), refreshing ``refresh_before`` ahead of expiry, so with the CP down checkouts keep
working for as long as the last tokens are valid (up to 5 minutes). ``get(exporter)`` is the slow path that
fetches on a miss; concurrent misses for one exporter share one fetch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from xporty.cp.v1 import identity_service_pb2, identity_service_pb2_grpc
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.errors import RemoteError, decode_rpc_error
from xwl_runtime.tokens import SCOPE_PLACE_ORDERS

if TYPE_CHECKING:
    from wl_node.cp_channel import CpChannel

log = logging.getLogger(__name__)

DEFAULT_REFRESH_BEFORE = dt.timedelta(seconds=90)
DEFAULT_MIN_REMAINING = dt.timedelta(seconds=10)
ISSUE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class PeerToken:
    """A token for one exporter and its expiry."""

    token: str
    expires_at: dt.datetime


Fetch = Callable[[str], Coroutine[Any, Any, PeerToken]]


def fetch_via_cp(cp: CpChannel, *, timeout_s: float = ISSUE_TIMEOUT_S) -> Fetch:
    """A ``Fetch`` that calls IdentityService.IssueToken on the node's current CP channel.

    Raises ``RemoteError`` when the CP refuses or is unreachable.
    """

    async def fetch(exporter_wl: str) -> PeerToken:
        request = identity_service_pb2.IssueTokenRequest(audience_wl=exporter_wl, scopes=[SCOPE_PLACE_ORDERS])
        try:
            async with cp.lease() as channel:
                response = await identity_service_pb2_grpc.IdentityServiceStub(channel).IssueToken(
                    request, timeout=timeout_s, metadata=cp.metadata()
                )
        except grpc.aio.AioRpcError as err:
            raise decode_rpc_error(err) from err
        return PeerToken(response.token, response.expire_time.ToDatetime(dt.UTC))

    return fetch


class PeerTokenCache:
    """Tokens per exporter WL, refreshed in the background before they expire."""

    def __init__(
        self,
        fetch: Fetch,
        clock: Clock,
        *,
        refresh_before: dt.timedelta = DEFAULT_REFRESH_BEFORE,
        min_remaining: dt.timedelta = DEFAULT_MIN_REMAINING,
        poll_interval: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._refresh_before = refresh_before
        self._min_remaining = min_remaining
        self._poll_interval = poll_interval
        self._backoff = backoff or Backoff(base_s=0.2, cap_s=5.0)
        self._tokens: dict[str, PeerToken] = {}
        self._inflight: dict[str, asyncio.Task[PeerToken]] = {}
        self._wanted: frozenset[str] = frozenset()

    def want(self, exporter_wls: Iterable[str]) -> None:
        """Keep tokens warm for exactly these exporters (others are dropped from the cache)."""
        self._wanted = frozenset(exporter_wls)
        for gone in set(self._tokens) - self._wanted:
            del self._tokens[gone]

    def token_for(self, exporter_wl: str) -> str | None:
        """A cached token usable for at least ``min_remaining``, without any I/O."""
        cached = self._tokens.get(exporter_wl)
        if cached is None or cached.expires_at - self._clock.now() < self._min_remaining:
            return None
        return cached.token

    async def get(self, exporter_wl: str) -> str:
        """A usable token, fetched now on a miss (raises ``RemoteError`` if the CP cannot give one)."""
        token = self.token_for(exporter_wl)
        if token is not None:
            return token
        return (await self._refresh(exporter_wl)).token

    async def _refresh(self, exporter_wl: str) -> PeerToken:
        task = self._inflight.get(exporter_wl)
        if task is None:
            task = asyncio.create_task(self._fetch(exporter_wl))
            self._inflight[exporter_wl] = task
            task.add_done_callback(lambda done: self._forget(exporter_wl, done))
        fresh = await asyncio.shield(task)
        self._tokens[exporter_wl] = fresh
        return fresh

    def _forget(self, exporter_wl: str, done: asyncio.Task[PeerToken]) -> None:
        if self._inflight.get(exporter_wl) is done:
            del self._inflight[exporter_wl]

    def _due(self) -> list[str]:
        now = self._clock.now()
        return sorted(
            wl for wl in self._wanted
            if wl not in self._tokens or self._tokens[wl].expires_at - now <= self._refresh_before
        )

    async def refresh_due(self) -> bool:
        """Refresh every wanted token close to expiry; True when all refreshes succeeded."""
        ok = True
        for exporter_wl in self._due():
            try:
                await self._refresh(exporter_wl)
            except RemoteError as err:
                ok = False
                log.warning("peer token refresh failed",
                            extra={"fields": {"exporter": exporter_wl, "code": err.code.name, "reason": err.reason}})
        return ok

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh due tokens until ``stop`` is set; back off while the CP fails."""
        while not stop.is_set():
            if await self.refresh_due():
                self._backoff.reset()
                delay = self._poll_interval
            else:
                delay = self._backoff.next_delay()
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                continue
