"""A pair's relationship status as the signal path reports it (PAIR_STATUS signals), beside the policy view.

The CP issues a PAIR_STATUS signal in the same transaction as every change of a pair's status (ACTIVE, PAUSED,
BLOCKED). The enforcer keeps the newest one per pair (by policy version) in ``PairStatusState``; the gate refuses
a pair's trade when either this state or the policy view says it is not ACTIVE, with the reasons the policy-view
path already uses (``wl_node.orders.gate.judge_pair``): ``PAIR_PAUSED``, ``PAIR_BLOCKED``, else
``PAIR_NOT_ACTIVE``. So a pause that arrives by signal before the policy view takes effect at once, and trade
resumes only once both say ACTIVE again (fail safe).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from xporty.cp.v1 import policy_pb2, signal_pb2

ACTIVE = "ACTIVE"
_REASONS = {"PAUSED": "PAIR_PAUSED", "BLOCKED": "PAIR_BLOCKED"}


def pair_key(wl_x: str, wl_y: str) -> tuple[str, str]:
    """The pair's stored order (wl_a < wl_b)."""
    return (wl_x, wl_y) if wl_x < wl_y else (wl_y, wl_x)


def status_name(value: int) -> str:
    """``RELATIONSHIP_STATUS_PAUSED`` → ``PAUSED``; an unknown or unset value reads as ``UNSPECIFIED``."""
    try:
        return policy_pb2.RelationshipStatus.Name(value).removeprefix("RELATIONSHIP_STATUS_")
    except ValueError:
        return "UNSPECIFIED"


@dataclass(frozen=True)
class PairStatusState:
    """The newest PAIR_STATUS signal applied to one pair {wl_a, wl_b}."""

    wl_a: str
    wl_b: str
    status: str
    """ACTIVE | PAUSED | BLOCKED (UNSPECIFIED if the CP sent none: treated as not active)."""
    policy_version: int
    signal_id: str
    sequence: int
    reason: str
    correlation_id: str
    effective_at: dt.datetime

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def refusal(self) -> str | None:
        """The gate's reason while the pair is not ACTIVE, else None."""
        return None if self.active else _REASONS.get(self.status, "PAIR_NOT_ACTIVE")

    @classmethod
    def from_signal(cls, signal: signal_pb2.Signal, effective_at: dt.datetime) -> PairStatusState:
        a, b = pair_key(signal.exporter_wl, signal.importer_wl)
        return cls(
            wl_a=a, wl_b=b, status=status_name(signal.pair_status), policy_version=signal.policy_version,
            signal_id=signal.signal_id, sequence=signal.sequence, reason=signal.reason[:512],
            correlation_id=signal.correlation_id or f"signal-{signal.signal_id}", effective_at=effective_at,
        )
