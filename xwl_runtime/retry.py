"""Outbound call discipline: deadlines from the caller's remaining time, retries with full jitter and a budget.

grpcio neither propagates deadlines nor reliably applies a service-config timeout, so each attempt gets an
explicit ``timeout`` = what is left of the overall deadline minus a safety margin. Retries happen only on codes
the caller declares safe (UNAVAILABLE always; DEADLINE_EXCEEDED only for calls made safe by an idempotency key)
and only while the retry budget (a token bucket like gRPC's retry throttling) has tokens, so a sick peer does not
get a retry storm.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from .clock import Clock, SystemClock

T = TypeVar("T")


@dataclass
class RetryBudget:
    """Token bucket: each call adds ``ratio`` tokens (up to ``max_tokens``); each retry spends one."""

    ratio: float = 0.2
    max_tokens: float = 20.0
    tokens: float = 20.0

    def on_call(self) -> None:
        self.tokens = min(self.max_tokens, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class RetryPolicy:
    """How one kind of outbound call is retried."""

    max_attempts: int = 3
    base_backoff_s: float = 0.01
    max_backoff_s: float = 0.1
    retryable: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})
    margin_s: float = 0.002
    min_attempt_timeout_s: float = 0.005


class DeadlineExhausted(Exception):
    """No time is left for another attempt."""


@dataclass
class Deadline:
    """An absolute deadline on the monotonic clock."""

    at: float
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def after(cls, seconds: float, clock: Clock | None = None) -> Deadline:
        c = clock or SystemClock()
        return cls(c.monotonic() + seconds, c)

    def remaining(self) -> float:
        return self.at - self.clock.monotonic()


async def call_with_retries(
    attempt: Callable[[float], Awaitable[T]],
    *,
    deadline: Deadline,
    policy: RetryPolicy,
    budget: RetryBudget | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Call ``attempt(timeout_s)`` until it succeeds, fails with a non-retryable code, or time/attempts/budget end."""
    rng = rng or random.Random()
    if budget is not None:
        budget.on_call()
    tries = 0
    while True:
        timeout = deadline.remaining() - policy.margin_s
        if timeout < policy.min_attempt_timeout_s:
            raise DeadlineExhausted("deadline exhausted before the call could be attempted")
        tries += 1
        try:
            return await attempt(timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() not in policy.retryable or tries >= policy.max_attempts:
                raise
            if budget is not None and not budget.try_spend():
                raise
            delay = rng.uniform(0, min(policy.max_backoff_s, policy.base_backoff_s * 2 ** (tries - 1)))
            if deadline.remaining() - delay - policy.margin_s < policy.min_attempt_timeout_s:
                raise
            await sleep(delay)
