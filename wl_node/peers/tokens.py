"""Short-lived JWTs for calling peer exporters, fetched from the CP ahead of time and cached.

A checkout never waits on the CP: ``get(audience)`` only reads the cache. The refresh loop keeps a token for every
exporter this WL imports from (and any audience a caller asked for): when one is missing or has less than
``refresh_fraction`` of its lifetime left (default: half of it), one ``IdentityService.IssueTokens`` call renews
the tokens of every peer the CP lets this WL call (one single-audience token each), so all tokens share one issue
time and a node makes one token RPC per half token lifetime whatever its number of peers. An audience the CP did
not grant is not asked for again until the policy changes (``poke``) or the poll period passes, so checkouts
towards a blocked exporter do not turn into token RPCs. Against a CP without ``IssueTokens`` (UNIMPLEMENTED: an
older release) the cache falls back to one ``IssueToken`` per due audience. Jittered backoff while the CP fails.
With the CP down a cached token stays usable until ``expiry - expiry_margin``; after that ``get`` answers None and
callers refuse with UNAVAILABLE ``TOKEN_UNAVAILABLE`` instead of sending a token the exporter would reject.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import grpc

from xporty.cp.v1 import identity_service_pb2, identity_service_pb2_grpc
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.tokens import SCOPE_PLACE_ORDERS

log = logging.getLogger(__name__)

DEFAULT_REFRESH_FRACTION = 0.5
DEFAULT_EXPIRY_MARGIN = dt.timedelta(seconds=5)
DEFAULT_POLL = dt.timedelta(seconds=30)
"""Longest sleep of the refresh loop: it wakes sooner when a token falls due, or on ``want``/``poke``."""
ISSUE_TIMEOUT_S = 2.0
BATCH_TIMEOUT_S = 10.0
"""Deadline of one IssueTokens call: it runs off the checkout path, at half the tokens' lifetime, so a CP slowed
by a burst of trade gets time to answer instead of a retry every two seconds."""


class CpLease(Protocol):
    """What the cache needs from the node's CP channel (``wl_node.cp_channel.CpChannel``)."""

    def lease(self) -> AbstractAsyncContextManager[grpc.aio.Channel]: ...

    def metadata(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True)
class CachedToken:
    token: str
    issued_at: dt.datetime
    expires_at: dt.datetime


class TokenCache:
    """Per-audience token cache with a background refresh loop."""

    def __init__(
        self,
        cp: CpLease,
        clock: Clock,
        *,
        audiences: Callable[[], Iterable[str]] = lambda: (),
        refresh_fraction: float = DEFAULT_REFRESH_FRACTION,
        expiry_margin: dt.timedelta = DEFAULT_EXPIRY_MARGIN,
        poll: dt.timedelta = DEFAULT_POLL,
        backoff: Backoff | None = None,
    ) -> None:
        self._cp = cp
        self._clock = clock
        self._audiences = audiences
        self._refresh_fraction = refresh_fraction
        self._margin = expiry_margin
        self._poll = poll
        self._backoff = backoff or Backoff(base_s=0.2, cap_s=3.0)
        self._tokens: dict[str, CachedToken] = {}
        self._wanted: set[str] = set()
        self._denied: set[str] = set()
        """Audiences the last batch did not grant: not asked for again until ``poke`` or the poll period."""
        self._denied_at: dt.datetime | None = None
        self._batch = True
        """False once the CP answered IssueTokens with UNIMPLEMENTED: one IssueToken per audience."""
        self.rpcs = 0
        """Token RPCs sent to the CP (IssueTokens and IssueToken calls)."""
        self._wake = asyncio.Event()

    def get(self, audience_wl: str) -> str | None:
        """A token for calling ``audience_wl`` that is valid for at least the margin, or None (never blocks)."""
        cached = self._tokens.get(audience_wl)
        if cached is None or self._clock.now() >= cached.expires_at - self._margin:
            self.want(audience_wl)
            return None
        return cached.token

    def want(self, audience_wl: str) -> None:
        """Ask the refresh loop to keep a token for ``audience_wl``."""
        if audience_wl not in self._wanted:
            self._wanted.add(audience_wl)
            self._wake.set()
        elif audience_wl not in self._tokens and audience_wl not in self._denied:
            self._wake.set()

    def poke(self) -> None:
        """Look again now (e.g. the policy view changed, so the audiences may have)."""
        self._denied.clear()
        self._wake.set()

    def _next_due_s(self, now: dt.datetime) -> float:
        """Seconds until the earliest cached token falls due for refresh (the poll period when none is cached)."""
        poll = self._poll.total_seconds()
        soonest = poll
        for cached in self._tokens.values():
            lifetime = cached.expires_at - cached.issued_at
            due = cached.expires_at - lifetime * self._refresh_fraction
            soonest = min(soonest, (due - now).total_seconds())
        return max(0.05, soonest)

    def put(self, audience_wl: str, token: str, issued_at: dt.datetime, expires_at: dt.datetime) -> None:
        """Store a token (the refresh loop, and tests)."""
        self._tokens[audience_wl] = CachedToken(token, issued_at, expires_at)

    def _due(self, audience: str, now: dt.datetime) -> bool:
        cached = self._tokens.get(audience)
        if cached is None:
            return True
        lifetime = cached.expires_at - cached.issued_at
        return now >= cached.expires_at - lifetime * self._refresh_fraction

    async def fetch(self, audience_wl: str) -> None:
        """Get a fresh token from the CP's IdentityService.IssueToken (raises ``grpc.aio.AioRpcError``)."""
        request = identity_service_pb2.IssueTokenRequest(audience_wl=audience_wl, scopes=[SCOPE_PLACE_ORDERS])
        self.rpcs += 1
        async with self._cp.lease() as channel:
            resp = await identity_service_pb2_grpc.IdentityServiceStub(channel).IssueToken(
                request, timeout=ISSUE_TIMEOUT_S, metadata=self._cp.metadata())
        self.put(audience_wl, resp.token, self._clock.now(), resp.expire_time.ToDatetime(dt.UTC))

    async def fetch_all(self) -> set[str]:
        """Fresh tokens for every peer the CP lets this WL call, in one IssueTokens call (raises
        ``grpc.aio.AioRpcError``); returns their audiences."""
        request = identity_service_pb2.IssueTokensRequest(scopes=[SCOPE_PLACE_ORDERS])
        self.rpcs += 1
        async with self._cp.lease() as channel:
            resp = await identity_service_pb2_grpc.IdentityServiceStub(channel).IssueTokens(
                request, timeout=BATCH_TIMEOUT_S, metadata=self._cp.metadata())
        now = self._clock.now()
        for t in resp.tokens:
            self.put(t.audience_wl, t.token, now, t.expire_time.ToDatetime(dt.UTC))
        return {t.audience_wl for t in resp.tokens}

    async def refresh_due(self) -> bool:
        """Fetch every token that is due (one IssueTokens call for all of them); True when that succeeded."""
        now = self._clock.now()
        if self._denied_at is not None and now - self._denied_at >= self._poll:
            self._denied.clear()
        due = [a for a in sorted({*self._audiences(), *self._wanted} - self._denied) if self._due(a, now)]
        if not due:
            return True
        if self._batch:
            try:
                granted = await self.fetch_all()
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                    self._fetch_failed(err, ",".join(due[:5]))
                    return False
                self._batch = False
                log.info("the CP has no IssueTokens; fetching one token per peer")
            else:
                denied = set(due) - granted
                if denied:
                    self._denied |= denied
                    self._denied_at = now
                    log.info("the CP granted no token for some wanted peers (not callable under its policy)",
                             extra={"fields": {"audiences": sorted(denied)[:10], "count": len(denied)}})
                return True
        ok = True
        for audience in due:
            try:
                await self.fetch(audience)
            except grpc.aio.AioRpcError as err:
                ok = False
                self._fetch_failed(err, audience)
        return ok

    @staticmethod
    def _fetch_failed(err: grpc.aio.AioRpcError, audience: str) -> None:
        remote = decode_rpc_error(err)
        log.warning("token fetch failed; cached token stays in use until it expires",
                    extra={"fields": {"audience": audience, "code": remote.code.name, "reason": remote.reason}})

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh loop: until ``stop`` is set."""
        while not stop.is_set():
            self._wake.clear()
            ok = await self.refresh_due()
            delay = self._next_due_s(self._clock.now())
            if ok:
                self._backoff.reset()
                await self._clock.wait_any(stop, self._wake, timeout=delay)
            else:
                # While the CP fails, requests for tokens do not shorten the backoff (no hammering).
                await self._clock.wait_any(stop, timeout=min(delay, self._backoff.next_delay()))
