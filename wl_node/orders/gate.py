"""Whether the exporter may sell to an importer right now: pair policy, direction policy, signals, guards.

Checked inside the PlaceOrder transaction, so a pair that turns PAUSED refuses every order that starts after the
change while orders already past this point finish. A refusal is a business answer (the order is DENIED with the
reason and recorded), not an error.

Hooks left for other features:

* ``signal_gate(exporter_wl, importer_wl) -> reason | None``: the risk enforcer's view (a pair disabled by a CP
  signal, or a risk view too old: fail closed);
* ``guards``: checks run in the transaction (e.g. the local imbalance guard), which may deny with a reason
  or raise an ``XcwlError`` (FAILED_PRECONDITION with details), rolling everything back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

import sqlalchemy as sa

from wl_node.policy.state import PolicyState
from xporty.cp.v1 import policy_pb2

SignalGate = Callable[[str, str], str | None]
"""(exporter_wl, importer_wl) -> denial reason, or None when no signal disables the direction."""


@dataclass(frozen=True)
class OrderIntent:
    """What a guard needs to judge an order before stock is reserved."""

    exporter_wl: str
    importer_wl: str
    offer_id: str
    quantity: int
    currency: str
    total: Decimal
    correlation_id: str
    buyer_hash: str = ""
    """The buyer's cohort hash the importer sent (``xwl_runtime.cohort``); empty when it sent none."""


OrderGuard = Callable[[sa.Connection, OrderIntent], str | None]
"""Runs in the PlaceOrder transaction (worker thread); returns a denial reason or None, may raise XcwlError."""


@runtime_checkable
class SettlingGuard(Protocol):
    """An ``OrderGuard`` that wants the outcome of the orders it admitted (e.g. to resolve a reservation)."""

    def __call__(self, conn: sa.Connection, intent: OrderIntent) -> str | None: ...

    def settle(self, intent: OrderIntent, order_id: str | None, confirmed: bool) -> None:
        """After the transaction: committed as ``order_id`` (CONFIRMED or not), or rolled back (``order_id`` None)."""


@dataclass(frozen=True)
class PairDecision:
    """The policy facts an order is priced under, or the reason it is refused."""

    deny_reason: str | None
    policy_version: int
    fx_version: int
    export_delay: dt.timedelta = dt.timedelta(0)


_STATUS_REASON = {
    policy_pb2.RELATIONSHIP_STATUS_PAUSED: "PAIR_PAUSED",
    policy_pb2.RELATIONSHIP_STATUS_BLOCKED: "PAIR_BLOCKED",
}


def judge_pair(state: PolicyState, exporter_wl: str, importer_wl: str, signal_gate: SignalGate | None) -> PairDecision:
    """Evaluate the policy for ``importer_wl`` buying from ``exporter_wl`` (on either node of the pair)."""
    version = state.version
    pair = state.pair(importer_wl if exporter_wl == state.wl_id else exporter_wl)
    if pair is None:
        return PairDecision("NO_PAIR_POLICY", version, 0)
    fx_version = pair.fx_version
    if pair.status != policy_pb2.RELATIONSHIP_STATUS_ACTIVE:
        return PairDecision(_STATUS_REASON.get(pair.status, "PAIR_NOT_ACTIVE"), version, fx_version)
    if pair.imports_frozen:
        return PairDecision("IMPORTS_FROZEN", version, fx_version)
    direction = state.direction(exporter_wl, importer_wl)
    if direction is None or not direction.import_enabled:
        return PairDecision("IMPORT_DISABLED", version, fx_version)
    if not direction.destination_visible:
        return PairDecision("NOT_VISIBLE_TO_IMPORTER", version, fx_version)
    if signal_gate is not None:
        reason = signal_gate(exporter_wl, importer_wl)
        if reason:
            return PairDecision(reason, version, fx_version)
    return PairDecision(None, version, fx_version, direction.export_delay.ToTimedelta())


def run_guards(conn: sa.Connection, guards: Sequence[OrderGuard], intent: OrderIntent) -> str | None:
    """The first guard's denial reason, or None."""
    for guard in guards:
        reason = guard(conn, intent)
        if reason:
            return reason
    return None
