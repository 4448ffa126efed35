"""The rollout rule of one direction as the node's policy view says it, and the checks both sides run with it.

A direction is restricted only while its rollout in the view is at PILOT or EXPANSION; at GENERAL, or without a
rollout, nothing here refuses. The checks, in order:

1. cohort: the buyer's cohort hash is on the stage's allow-list, or falls in its share (``xwl_runtime.cohort``);
2. maximum order value;
3. daily value cap (counted by the caller: the exporter in its PlaceOrder transaction, the importer in memory).

Each refusal is FAILED_PRECONDITION naming the stage and the cap, with the headroom, in ErrorInfo metadata.
Values are in the exporter's currency (what both sides of an order know exactly).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from wl_node.policy.state import PolicyState
from xporty.cp.v1 import policy_pb2, rollout_pb2
from xwl_runtime.cohort import in_share
from xwl_runtime.errors import FailedPrecondition

_STAGES = {rollout_pb2.ROLLOUT_STAGE_PILOT: "PILOT", rollout_pb2.ROLLOUT_STAGE_EXPANSION: "EXPANSION"}


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


@dataclass(frozen=True)
class StageRule:
    """The limits a restricted direction trades under."""

    exporter_wl: str
    importer_wl: str
    stage: str
    cohort_hashes: frozenset[str]
    cohort_bp: int
    max_order_value: Decimal | None
    daily_value_cap: Decimal | None
    policy_version: int
    since_version: int = 0
    """Policy version at which the rollout last changed (the importer counts its checkouts from then on)."""

    def _meta(self) -> dict[str, str]:
        return {"stage": self.stage, "exporter_wl": self.exporter_wl, "importer_wl": self.importer_wl,
                "policy_version": str(self.policy_version)}

    def check_cohort(self, buyer_hash: str) -> None:
        if buyer_hash in self.cohort_hashes or (self.cohort_bp > 0 and in_share(buyer_hash, self.cohort_bp)):
            return
        raise FailedPrecondition(
            f"{self.exporter_wl}->{self.importer_wl} is in {self.stage}: the buyer is not in its cohort",
            reason="ROLLOUT_NOT_IN_COHORT", metadata={**self._meta(), "cap": "cohort"})

    def check_order_value(self, value: Decimal) -> None:
        cap = self.max_order_value
        if cap is None or value <= cap:
            return
        raise FailedPrecondition(
            f"{self.exporter_wl}->{self.importer_wl} is in {self.stage}: order value {_fmt(value)} is above the "
            f"maximum order value {_fmt(cap)}", reason="ROLLOUT_ORDER_VALUE_CAP",
            metadata={**self._meta(), "cap": "max_order_value", "limit": _fmt(cap), "order_value": _fmt(value),
                      "headroom": _fmt(cap)})

    def refuse_daily(self, used: Decimal, value: Decimal, day: dt.date) -> FailedPrecondition:
        cap = self.daily_value_cap or Decimal(0)
        headroom = max(Decimal(0), cap - used)
        return FailedPrecondition(
            f"{self.exporter_wl}->{self.importer_wl} is in {self.stage}: order value {_fmt(value)} would pass the "
            f"daily value cap {_fmt(cap)} ({_fmt(headroom)} left on {day.isoformat()})",
            reason="ROLLOUT_DAILY_CAP",
            metadata={**self._meta(), "cap": "daily_value_cap", "limit": _fmt(cap), "used": _fmt(used),
                      "order_value": _fmt(value), "headroom": _fmt(headroom), "day": day.isoformat()})

    def check(self, buyer_hash: str, value: Decimal) -> None:
        """Cohort and maximum order value (the daily cap needs the caller's count)."""
        self.check_cohort(buyer_hash)
        self.check_order_value(value)


def _rule(view: policy_pb2.PolicyView, exporter_wl: str, importer_wl: str) -> StageRule | None:
    for rollout in view.rollouts:
        if rollout.exporter_wl != exporter_wl or rollout.importer_wl != importer_wl:
            continue
        stage = _STAGES.get(rollout.stage)
        if stage is None:
            return None  # GENERAL, or a stage this node does not know: not restricted by rollout
        limits = rollout.limits
        return StageRule(
            exporter_wl=exporter_wl, importer_wl=importer_wl, stage=stage,
            cohort_hashes=frozenset(limits.cohort_buyer_hashes), cohort_bp=limits.cohort_basis_points,
            max_order_value=Decimal(limits.max_order_value) if limits.max_order_value else None,
            daily_value_cap=Decimal(limits.daily_value_cap) if limits.daily_value_cap else None,
            policy_version=view.version, since_version=rollout.changed_version)
    return None


class RolloutRules:
    """The stage rule of each direction in the served view (rebuilt once per view version).

    Read on the event loop thread only, like ``PolicyState``; the rules it returns are immutable and may be used
    in a worker thread (the order desk's transaction).
    """

    def __init__(self, state: PolicyState) -> None:
        self._state = state
        self._cache: tuple[int, dict[tuple[str, str], StageRule | None]] = (-1, {})

    def rule(self, exporter_wl: str, importer_wl: str) -> StageRule | None:
        view = self._state.current()
        if view is None:
            return None
        version, rules = self._cache
        if version != view.version:
            rules = {}
            self._cache = (view.version, rules)
        key = (exporter_wl, importer_wl)
        if key not in rules:
            rules[key] = _rule(view, exporter_wl, importer_wl)
        return rules[key]
