"""TradeGate: one place that says whether this node may trade with a partner now, and why not.

It combines the policy view (``PolicyState``: pair ACTIVE/PAUSED/BLOCKED, imports frozen, import enabled,
destination visibility — judged by ``wl_node.orders.gate.judge_pair``, the rules the order desk and checkout
already apply) with the enforcer (a pair PAUSED/BLOCKED by a PAIR_STATUS signal, a direction disabled by a CP
signal, or a risk view too old: fail closed). A pair trades only while BOTH its policy view and its newest status
signal say ACTIVE: a pause arriving by signal before the view takes effect at once, and re-activation needs both.
``check_import`` / ``check_export`` raise FAILED_PRECONDITION with the precise reason in ErrorInfo:

``NO_PAIR_POLICY``, ``PAIR_PAUSED``, ``PAIR_BLOCKED``, ``PAIR_NOT_ACTIVE`` (policy view), ``IMPORTS_FROZEN``,
``IMPORT_DISABLED``, ``NOT_VISIBLE_TO_IMPORTER``, then the enforcer's: ``PAIR_PAUSED``, ``PAIR_BLOCKED``,
``PAIR_NOT_ACTIVE`` (status signal), ``RISK_VIEW_STALE``, ``DIRECTION_DISABLED`` (in that order of precedence).

``signal_gate`` is the enforcer's part alone, in the ``SignalGate`` shape the order desk (``signal_gate=``) and the
checkout (``signal_gate=``) take.
"""

from __future__ import annotations

from wl_node.orders.gate import PairDecision, SignalGate, judge_pair
from wl_node.policy.state import PolicyState
from xwl_runtime.errors import FailedPrecondition

from .enforcer import Enforcer


class TradeGate:
    """Policy view + enforcer → admit or refuse a trade direction."""

    def __init__(self, state: PolicyState, enforcer: Enforcer) -> None:
        self._state = state
        self._enforcer = enforcer
        self.wl_id = state.wl_id

    @property
    def signal_gate(self) -> SignalGate:
        return self._enforcer.signal_gate

    def decision(self, exporter_wl: str, importer_wl: str) -> PairDecision:
        """The policy facts of the direction, with the first refusal reason (or None)."""
        return judge_pair(self._state, exporter_wl, importer_wl, self._enforcer.signal_gate)

    def _check(self, exporter_wl: str, importer_wl: str) -> PairDecision:
        decision = self.decision(exporter_wl, importer_wl)
        if decision.deny_reason:
            raise FailedPrecondition(
                f"trade {exporter_wl} -> {importer_wl} is not allowed now: {decision.deny_reason}",
                reason=decision.deny_reason,
                metadata={"exporter_wl": exporter_wl, "importer_wl": importer_wl,
                          "policy_version": str(decision.policy_version)},
            )
        return decision

    def check_import(self, exporter_wl: str) -> PairDecision:
        """May this node import from ``exporter_wl`` now? FAILED_PRECONDITION with the reason if not."""
        return self._check(exporter_wl, self.wl_id)

    def check_export(self, importer_wl: str) -> PairDecision:
        """May this node export to ``importer_wl`` now? FAILED_PRECONDITION with the reason if not."""
        return self._check(self.wl_id, importer_wl)
