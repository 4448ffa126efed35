"""Admission before work: a token bucket per caller and a cap on each caller's concurrent streams.

The ``ServerPipeline`` asks an ``Admission`` once per RPC, after it has established who the caller is and before
the servicer runs, so a caller over its budget costs a dictionary lookup and nothing else. Authenticated callers are
keyed by their SPIFFE id (one WL cannot spend another WL's budget); anonymous callers (the enrollment listener) by
their network address, with a much smaller budget. A refusal is RESOURCE_EXHAUSTED with an ErrorInfo reason
(``RATE_LIMITED`` / ``TOO_MANY_STREAMS``) and a ``google.rpc.RetryInfo`` telling the caller when to come back.

State is per process (a CP replica limits what reaches it); memory is bounded by ``RateLimits.max_tracked``: when
the table is full, buckets that have refilled completely (idle callers) are dropped first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2

from .errors import ResourceExhausted

RATE_LIMITED = "RATE_LIMITED"
TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
STREAM_RETRY_AFTER_S = 1.0
"""Retry delay suggested to a caller over its stream cap (a stream slot frees when one of its streams ends)."""


@dataclass(frozen=True)
class RateLimits:
    """Per-caller budgets of one server; the defaults leave every bench and node loop far below them."""

    rate_per_s: float = 200.0
    """Sustained RPCs per second per authenticated identity."""
    burst: int = 400
    """RPCs an authenticated identity may send at once after being idle."""
    max_streams: int = 16
    """Concurrent server/bidi streams per authenticated identity (a node holds 2: policies and signals)."""
    anonymous_rate_per_s: float = 2.0
    """Sustained RPCs per second per network address without a client certificate (enrollment)."""
    anonymous_burst: int = 20
    """Anonymous RPCs per address at once after being idle."""
    max_tracked: int = 100_000
    """Callers tracked at most; idle (full) buckets are forgotten first."""

    def __post_init__(self) -> None:
        if min(self.rate_per_s, self.anonymous_rate_per_s) <= 0:
            raise ValueError("rate limits must be > 0 per second")
        if min(self.burst, self.anonymous_burst, self.max_streams, self.max_tracked) < 1:
            raise ValueError("bursts, max_streams and max_tracked must be >= 1")


class RateLimited(ResourceExhausted):
    """A caller is over its budget; carries a ``google.rpc.RetryInfo`` with the delay to wait."""

    def __init__(self, message: str, *, reason: str, retry_after_s: float) -> None:
        super().__init__(message, reason=reason, metadata={"retry_after_ms": str(math.ceil(retry_after_s * 1000))})
        self.retry_after_s = retry_after_s

    def extra_details(self) -> list[any_pb2.Any]:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(math.ceil(self.retry_after_s * 1e9))
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        return [packed]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Admission:
    """Decides whether a caller's RPC may start; shared by every listener of a process."""

    def __init__(self, limits: RateLimits, *, now: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._now = now
        self._buckets: dict[str, _Bucket] = {}
        self._streams: dict[str, int] = {}

    def admit(self, key: str, *, anonymous: bool) -> None:
        """Spend one token of ``key``'s bucket, or raise ``RateLimited`` (reason ``RATE_LIMITED``)."""
        rate, burst = self._budget(anonymous)
        now = self._now()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        else:
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens < 1.0:
            raise RateLimited(
                "rate limit exceeded", reason=RATE_LIMITED, retry_after_s=(1.0 - bucket.tokens) / rate
            )
        bucket.tokens -= 1.0

    @contextmanager
    def stream(self, key: str) -> Iterator[None]:
        """Hold one of ``key``'s stream slots for the duration of the block, or raise (``TOO_MANY_STREAMS``)."""
        open_now = self._streams.get(key, 0)
        if open_now >= self.limits.max_streams:
            raise RateLimited(
                f"at most {self.limits.max_streams} concurrent streams per caller",
                reason=TOO_MANY_STREAMS, retry_after_s=STREAM_RETRY_AFTER_S,
            )
        self._streams[key] = open_now + 1
        try:
            yield
        finally:
            left = self._streams[key] - 1
            if left:
                self._streams[key] = left
            else:
                del self._streams[key]

    def open_streams(self, key: str) -> int:
        """Streams ``key`` holds now."""
        return self._streams.get(key, 0)

    def _budget(self, anonymous: bool) -> tuple[float, int]:
        if anonymous:
            return self.limits.anonymous_rate_per_s, self.limits.anonymous_burst
        return self.limits.rate_per_s, self.limits.burst

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self.limits.max_tracked:
            return
        # Forget callers whose bucket would be full by now: keeping them changes no decision.
        limits = self.limits
        full_after = max(limits.burst / limits.rate_per_s, limits.anonymous_burst / limits.anonymous_rate_per_s)
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}
        if len(self._buckets) >= limits.max_tracked:
            # Still full of active callers: drop the oldest half rather than grow without bound.
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1].updated)[len(self._buckets) // 2:]
            self._buckets = dict(keep)


def peer_address(peer: str) -> str:
    """The host part of a gRPC peer string (``ipv4:1.2.3.4:5678``, ``ipv6:[::1]:5678``): one budget per host."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, _port = rest.rpartition(":")
        return f"{kind}:{host}"
    return peer[:128]
