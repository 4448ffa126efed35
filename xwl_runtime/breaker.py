"""An asyncio circuit breaker with pybreaker's semantics, safe under grpc.aio and concurrency.

pybreaker itself holds a lock around the whole wrapped call and counts an un-awaited coroutine as a success, so
under asyncio it cannot guard an awaited RPC. This keeps its state machine and vocabulary:

* CLOSED: calls pass; ``fail_max`` consecutive counted failures open the circuit.
* OPEN: calls fail fast with ``CircuitOpenError`` until ``reset_timeout`` has passed, then HALF_OPEN.
* HALF_OPEN: exactly one probe call passes (concurrent callers fail fast); its success closes the circuit, its
  failure opens it again for another ``reset_timeout``.

Exceptions for which ``is_failure(exc)`` is False (e.g. a business refusal from a healthy peer) count as success.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .clock import Clock, SystemClock

log = logging.getLogger(__name__)
T = TypeVar("T")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """Raised instead of calling when the circuit is open (or a half-open probe is already running)."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"circuit {name} is open")
        self.name = name
        self.retry_after_s = retry_after_s


class AsyncCircuitBreaker:
    """One breaker per remote peer; all state changes happen on the event loop thread (no awaits inside them)."""

    def __init__(
        self,
        name: str,
        *,
        fail_max: int = 5,
        reset_timeout_s: float = 5.0,
        is_failure: Callable[[BaseException], bool] = lambda exc: True,
        clock: Clock | None = None,
        on_state_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if fail_max < 1:
            raise ValueError("fail_max must be >= 1")
        self.name = name
        self.fail_max = fail_max
        self.reset_timeout_s = reset_timeout_s
        self._is_failure = is_failure
        self._clock = clock or SystemClock()
        self._on_state_change = on_state_change
        self._state = BreakerState.CLOSED
        self._fail_counter = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock.monotonic() - self._opened_at >= self.reset_timeout_s:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def fail_counter(self) -> int:
        return self._fail_counter

    def _set(self, new: BreakerState) -> None:
        old = self._state
        self._state = new
        if old is not new:
            log.info("circuit state change", extra={"fields": {"breaker": self.name, "from": old.value,
                                                               "to": new.value}})
            if self._on_state_change is not None:
                self._on_state_change(self.name, old, new)

    def _before_call(self) -> bool:
        """Admit or refuse a call; returns True when the call is the half-open probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            self._set(BreakerState.HALF_OPEN)
            return True
        remaining = max(0.0, self.reset_timeout_s - (self._clock.monotonic() - self._opened_at))
        raise CircuitOpenError(self.name, remaining)

    def _open(self) -> None:
        self._opened_at = self._clock.monotonic()
        self._set(BreakerState.OPEN)

    def _on_success(self, probe: bool) -> None:
        self._fail_counter = 0
        if probe:
            self._probe_in_flight = False
            self._set(BreakerState.CLOSED)

    def _on_failure(self, probe: bool) -> None:
        self._fail_counter += 1
        if probe:
            self._probe_in_flight = False
            self._open()
        elif self._state is BreakerState.CLOSED and self._fail_counter >= self.fail_max:
            self._open()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` through the breaker."""
        probe = self._before_call()
        try:
            result = await fn()
        except BaseException as exc:
            if isinstance(exc, Exception) and self._is_failure(exc):
                self._on_failure(probe)
            elif probe:
                # Cancelled or not a peer failure: the probe slot is released without a verdict.
                self._probe_in_flight = False
                if isinstance(exc, Exception):
                    self._on_success(probe)
            raise
        self._on_success(probe)
        return result

    def reset(self) -> None:
        """Close the circuit (operator action)."""
        self._fail_counter = 0
        self._probe_in_flight = False
        self._set(BreakerState.CLOSED)
