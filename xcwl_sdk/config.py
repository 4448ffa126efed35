"""How the SDK client calls its node: deadlines and retries, one frozen dataclass with a default per field."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
"""Codes after which a request certainly or probably did not take effect: safe to retry a read."""
CHECKOUT_RETRY_CODES = frozenset({*TRANSIENT_CODES, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED})
"""A checkout may also be retried after ABORTED or a lost answer: the same idempotency key gets the same effect."""


@dataclass(frozen=True)
class RetryConfig:
    """Retries with full jitter, exponential, bounded by attempts and by the overall deadline."""

    max_attempts: int = 5
    """Attempts per call, the first included (1 = never retry)."""
    initial_backoff_s: float = 0.05
    """Upper bound of the first (jittered) pause."""
    max_backoff_s: float = 2.0
    """Upper bound of any pause; a server's RetryInfo delay is honoured even when longer."""
    read_codes: frozenset[grpc.StatusCode] = TRANSIENT_CODES
    """Codes on which reads (list, get, node state) are retried."""
    checkout_codes: frozenset[grpc.StatusCode] = CHECKOUT_RETRY_CODES
    """Codes on which a checkout is retried, always with the same idempotency key."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial_backoff_s < 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("max_attempts >= 1 and 0 <= initial_backoff_s <= max_backoff_s")


@dataclass(frozen=True)
class ClientConfig:
    """Deadlines of the calls to the node's local API."""

    timeout_s: float = 5.0
    """Deadline of one call (all its retries included), sent to the node with every attempt."""
    checkout_timeout_s: float = 30.0
    """Deadline of ``checkout(..., wait=True)``: retries and re-sends while the checkout is PENDING."""
    pending_poll_s: float = 0.05
    """Pause between re-sends of a PENDING checkout (the node answers a replay from its store)."""
    page_size: int = 200
    """Offers per page when listing the imported catalog (the node allows at most 500)."""
    retry: RetryConfig = field(default_factory=RetryConfig)
    """Retry rules."""

    def __post_init__(self) -> None:
        if min(self.timeout_s, self.checkout_timeout_s, self.pending_poll_s) <= 0:
            raise ValueError("timeouts and pending_poll_s must be > 0")
        if not 1 <= self.page_size <= 500:
            raise ValueError("page_size must be 1..500")
