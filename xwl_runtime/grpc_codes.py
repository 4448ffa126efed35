"""What a failed outbound call's gRPC status code says, named once for every caller.

* ``TRANSIENT``: the path or the peer failed (nothing answered, or not in time); the same call may succeed later.
  Retried (writes only with an idempotency key) and counted by the circuit breakers.
* ``OUTCOME_UNKNOWN``: ``TRANSIENT`` and the codes with which a call may still have taken effect at the peer
  (cancelled, an unexpected error); a write that ends so is in doubt and is resolved later, never assumed failed.
* ``RETRY_LATER``: ``OUTCOME_UNKNOWN`` and the codes of a busy or contended peer (rate limited, aborted); an
  idempotent report retries after backoff instead of waiting for its next period.

Every other code is a definite answer from a healthy peer.
"""

from __future__ import annotations

import grpc

TRANSIENT: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
OUTCOME_UNKNOWN: frozenset[grpc.StatusCode] = TRANSIENT | {
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED}
RETRY_LATER: frozenset[grpc.StatusCode] = OUTCOME_UNKNOWN | {
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}
