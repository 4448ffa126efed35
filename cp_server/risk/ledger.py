"""The accounting rules of the imbalance: how ledger events move a pair's balance (pure, no I/O).

One rule set serves both the incremental path (``engine``) and the recomputation (``recompute``), so the two can
only disagree if the stored data does.

Who may say what (``OWNER``): the exporter owns EXPORT_CONFIRMED and ORDER_CANCELLED (the fate of its export),
the importer owns IMPORT_FINALIZED and COMPENSATION (the fate of its import). The CP alone writes GRACE_EXPIRED.

Per order (``order_id``), in the reference unit:

* ``EXPORT_CONFIRMED`` fixes the order's value: ``amount × reference_rate`` of the exporter's currency at the CP's
  receipt of the event, and the exporter's amount and quantity. One per order.
* ``IMPORT_FINALIZED`` records the importer's amount and quantity. One per order.
* ``ORDER_CANCELLED`` (exporter) reverses the order: it stops counting, whatever else arrived.
* ``COMPENSATION`` (importer) says the importer undid its side; alone it reverses nothing (the exporter's
  cancellation does), and without the exporter's cancellation it is a one-sided cancellation (reconciliation).
* ``GRACE_EXPIRED`` (CP) marks that the grace period ended without the two sides agreeing.

**The balance rule.** An order counts its value iff it is confirmed, not cancelled by the exporter, and either
both sides agree (the importer finalized the same amount and quantity and did not compensate) or the grace period
ended (``GRACE_EXPIRED``): then the exporter's side counts. The result depends only on the set of events of the
order, never on their arrival order, so replaying them in any order gives the same balance.
"""

from __future__ import annotations

import decimal
import enum
import hashlib
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
    GRACE_EXPIRED = 100
    """Written by the CP's reconciliation, never accepted from a node (not a proto value)."""


NODE_KINDS = frozenset(k for k in EventKind if k is not EventKind.GRACE_EXPIRED)
KIND_OF: dict[int, EventKind] = {k.value: k for k in NODE_KINDS}
"""Proto enum value → kind a node may send (a dict lookup: ``EventKind(value)`` is slow on the per-event path)."""
ORDER_KINDS = frozenset({EventKind.EXPORT_CONFIRMED, EventKind.IMPORT_FINALIZED, EventKind.ORDER_CANCELLED,
                         EventKind.COMPENSATION})
EXPORTER, IMPORTER = "exporter", "importer"
OWNER: dict[EventKind, str] = {
    EventKind.EXPORT_CONFIRMED: EXPORTER,
    EventKind.ORDER_CANCELLED: EXPORTER,
    EventKind.IMPORT_FINALIZED: IMPORTER,
    EventKind.COMPENSATION: IMPORTER,
}
"""The side of the order that owns the fact each order kind reports; an event from the other side is refused."""
AGREED, MISMATCH = "AGREED", "MISMATCH"
GRACE_EVENT_PREFIX = "cp-"
"""Event ids the CP writes itself start with this; nodes may not use it."""


def grace_event_id(order_id: str) -> str:
    """The id of an order's GRACE_EXPIRED marker (deterministic: two CP replicas write the same one)."""
    return "cp-grace-" + hashlib.sha256(order_id.encode()).hexdigest()[:40]


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
    """What the CP knows about one order: each side's report, and whether the grace period ended."""

    order_id: str
    exporter_wl: str
    importer_wl: str
    export_event_id: str | None = None
    export_value: Decimal | None = None
    finalize_event_id: str | None = None
    cancelled: bool = False
    """The exporter cancelled (ORDER_CANCELLED)."""
    export_amount: Decimal | None = None
    export_quantity: int = 0
    import_amount: Decimal | None = None
    import_quantity: int = 0
    compensated: bool = False
    """The importer compensated (COMPENSATION)."""
    settled: bool = False
    """GRACE_EXPIRED: the exporter's side counts without the importer's agreement."""

    @property
    def agreement(self) -> str | None:
        """AGREED / MISMATCH once both sides reported the sale, else None."""
        if self.export_event_id is None or self.finalize_event_id is None:
            return None
        if self.export_amount == self.import_amount and self.export_quantity == self.import_quantity:
            return AGREED
        return MISMATCH

    @property
    def agreed(self) -> bool:
        """Both sides say the same sale happened (and the importer did not undo it)."""
        return not self.compensated and self.agreement == AGREED

    @property
    def contribution(self) -> Decimal:
        """Value this order adds to its direction's exports (the balance rule)."""
        if self.export_value is None or self.cancelled or not (self.settled or self.agreed):
            return ZERO
        return self.export_value


@dataclass(frozen=True)
class Applied:
    """Outcome of one event on one order: the new state, the change of its contribution, and whether the event
    was a duplicate of one already counted (then it is not stored)."""

    state: OrderState
    delta: Decimal
    duplicate: bool


def apply(
    state: OrderState, kind: EventKind, event_id: str, value: Decimal | None, amount: Decimal | None = None,
    quantity: int = 0,
) -> Applied:
    """Apply one order event to ``state``: ``value`` is the reference value of an EXPORT_CONFIRMED, ``amount``
    and ``quantity`` what an EXPORT_CONFIRMED or IMPORT_FINALIZED reports."""
    # Explicit constructors rather than dataclasses.replace: this runs once per ingested event (hot path).
    before = state.contribution
    s = state
    if kind is EventKind.EXPORT_CONFIRMED:
        if s.export_event_id is not None:
            return Applied(state, ZERO, duplicate=True)
        new = OrderState(s.order_id, s.exporter_wl, s.importer_wl, event_id, value if value is not None else ZERO,
                         s.finalize_event_id, s.cancelled, amount, quantity, s.import_amount, s.import_quantity,
                         s.compensated, s.settled)
    elif kind is EventKind.IMPORT_FINALIZED:
        if s.finalize_event_id is not None:
            return Applied(state, ZERO, duplicate=True)
        new = OrderState(s.order_id, s.exporter_wl, s.importer_wl, s.export_event_id, s.export_value, event_id,
                         s.cancelled, s.export_amount, s.export_quantity, amount, quantity, s.compensated, s.settled)
    elif kind is EventKind.ORDER_CANCELLED:
        new = OrderState(s.order_id, s.exporter_wl, s.importer_wl, s.export_event_id, s.export_value,
                         s.finalize_event_id, True, s.export_amount, s.export_quantity, s.import_amount,
                         s.import_quantity, s.compensated, s.settled)
    elif kind is EventKind.COMPENSATION:
        new = OrderState(s.order_id, s.exporter_wl, s.importer_wl, s.export_event_id, s.export_value,
                         s.finalize_event_id, s.cancelled, s.export_amount, s.export_quantity, s.import_amount,
                         s.import_quantity, True, s.settled)
    elif kind is EventKind.GRACE_EXPIRED:
        if s.settled:
            return Applied(state, ZERO, duplicate=True)
        new = OrderState(s.order_id, s.exporter_wl, s.importer_wl, s.export_event_id, s.export_value,
                         s.finalize_event_id, s.cancelled, s.export_amount, s.export_quantity, s.import_amount,
                         s.import_quantity, s.compensated, True)
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


@dataclass
class PairDelta:
    """What one batch changed on one pair (a = smaller id)."""

    exports_ab: Decimal = ZERO
    exports_ba: Decimal = ZERO
    amount_ab: Decimal = ZERO
    amount_ba: Decimal = ZERO
    orders_ab: int = 0
    orders_ba: int = 0
    events: int = 0

    def moved(self, a_exports: bool, delta: Decimal, amount: Decimal | None) -> None:
        """An order of the direction exported by a (``a_exports``) or b changed its counted value by ``delta``
        (positive: it starts counting, negative: it stops); ``amount`` is its amount in the exporter's currency."""
        sign = 1 if delta > 0 else -1
        signed_amount = (amount or ZERO) if sign > 0 else -(amount or ZERO)
        if a_exports:
            self.exports_ab = RISK_CONTEXT.add(self.exports_ab, delta)
            self.amount_ab = RISK_CONTEXT.add(self.amount_ab, signed_amount)
            self.orders_ab += sign
        else:
            self.exports_ba = RISK_CONTEXT.add(self.exports_ba, delta)
            self.amount_ba = RISK_CONTEXT.add(self.amount_ba, signed_amount)
            self.orders_ba += sign

    @property
    def empty(self) -> bool:
        return not (self.events or self.orders_ab or self.orders_ba or self.exports_ab or self.exports_ba
                    or self.amount_ab or self.amount_ba)
