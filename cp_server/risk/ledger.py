"""The accounting rules of the imbalance: how ledger events move a pair's balance (pure, no I/O).

One rule set serves both the incremental path (``engine``) and the recomputation (``recompute``), so the two can
only disagree if the stored data does.

Per order (``order_id``), in the reference unit:

* ``EXPORT_CONFIRMED`` (emitted by the exporter) fixes the order's value: ``amount × reference_rate`` of the
  exporter's currency at the CP's receipt of the event. Only the first one per order counts; a later one with
  another ``event_id`` is a duplicate.
* ``ORDER_CANCELLED`` and ``COMPENSATION`` (either side) reverse the order: it stops counting. Several reversals
  reverse once.
* ``IMPORT_FINALIZED`` (emitted by the importer) is used for reconciliation only and never moves the balance: the
  export confirmation already counted the trade once.

An order counts ``export_value`` in its direction iff it has a confirmation and no reversal, whatever the arrival
order of its events (a cancellation that overtakes the confirmation still wins).
"""

from __future__ import annotations

import decimal
import enum
from dataclasses import dataclass
from decimal import Decimal

# Exact arithmetic: 60 significant digits leave room for any amount × rate product and their sums.
RISK_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation])
ZERO = Decimal(0)


class EventKind(enum.Enum):
    """Kinds of ``LedgerEvent`` as stored (the proto enum's name without its prefix)."""

    EXPORT_CONFIRMED = 1
    IMPORT_FINALIZED = 2
    ORDER_CANCELLED = 3
    COMPENSATION = 4
    ENFORCEMENT_ACK = 5


KIND_OF: dict[int, EventKind] = {k.value: k for k in EventKind}
"""Proto enum value → kind (a dict lookup: ``EventKind(value)`` is slow on the per-event path)."""
REVERSALS = frozenset({EventKind.ORDER_CANCELLED, EventKind.COMPENSATION})
ORDER_KINDS = frozenset({EventKind.EXPORT_CONFIRMED, EventKind.IMPORT_FINALIZED, *REVERSALS})


def dec_str(value: Decimal) -> str:
    """Plain decimal notation (never exponent form) for storage and the API."""
    return format(value, "f")


def pair_of(x: str, y: str) -> tuple[str, str]:
    """The unordered pair {x, y} as (smaller id, greater id)."""
    return (x, y) if x < y else (y, x)


def reference_value(amount: Decimal, rate: Decimal) -> Decimal:
    """``amount × rate`` exactly."""
    return RISK_CONTEXT.multiply(amount, rate)


@dataclass(frozen=True)
class OrderState:
    """What the CP knows about one order."""

    order_id: str
    exporter_wl: str
    importer_wl: str
    export_event_id: str | None = None
    export_value: Decimal | None = None
    finalize_event_id: str | None = None
    cancelled: bool = False

    @property
    def contribution(self) -> Decimal:
        """Value this order adds to its direction's exports."""
        if self.export_value is None or self.cancelled:
            return ZERO
        return self.export_value


@dataclass(frozen=True)
class Applied:
    """Outcome of one event on one order: the new state, the change of its contribution, and whether the event
    was a duplicate of one already counted (then it is not stored)."""

    state: OrderState
    delta: Decimal
    duplicate: bool


def apply(state: OrderState, kind: EventKind, event_id: str, value: Decimal | None) -> Applied:
    """Apply one order event (``value`` is the reference value of an EXPORT_CONFIRMED) to ``state``."""
    # Explicit constructors rather than dataclasses.replace: this runs once per ingested event (hot path).
    before = state.contribution
    s = state
    if kind is EventKind.EXPORT_CONFIRMED:
        if s.export_event_id is not None:
            return Applied(state, ZERO, duplicate=True)
        new = OrderState(s.order_id, s.exporter_wl, s.importer_wl, event_id, value if value is not None else ZERO,
                         s.finalize_event_id, s.cancelled)
    elif kind is EventKind.IMPORT_FINALIZED:
        if s.finalize_event_id is not None:
            return Applied(state, ZERO, duplicate=True)
        new = OrderState(s.order_id, s.exporter_wl, s.importer_wl, s.export_event_id, s.export_value, event_id,
                         s.cancelled)
    elif kind in REVERSALS:
        new = OrderState(s.order_id, s.exporter_wl, s.importer_wl, s.export_event_id, s.export_value,
                         s.finalize_event_id, True)
    else:
        raise ValueError(f"{kind} is not an order event")
    return Applied(new, RISK_CONTEXT.subtract(new.contribution, before), duplicate=False)


@dataclass(frozen=True)
class Balance:
    """Exports each way of one pair (a = smaller id)."""

    exports_ab: Decimal = ZERO
    exports_ba: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        """exports a→b minus exports b→a: positive when a exported more (b is in deficit toward a)."""
        return RISK_CONTEXT.subtract(self.exports_ab, self.exports_ba)

    def moved(self, wl_a: str, exporter_wl: str, delta: Decimal) -> Balance:
        """This balance after ``delta`` on the direction exported by ``exporter_wl``."""
        if exporter_wl == wl_a:
            return Balance(RISK_CONTEXT.add(self.exports_ab, delta), self.exports_ba)
        return Balance(self.exports_ab, RISK_CONTEXT.add(self.exports_ba, delta))
