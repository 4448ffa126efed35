"""Local imbalance guard: the node's own view of each pair's balance, checked synchronously before an order.

Both nodes of a pair see every order between them, so each keeps the bilateral balance itself and refuses, at
once, an order that would take the pair past its limit; the CP's DISABLE signal stays the authority, this makes
the reaction immediate.

Per unordered pair {a, b} (a < b), in the CP's reference unit (amount × the exporter WL's ``reference_rate`` from
the policy view, exact ``Decimal``), ``net = exports a→b − exports b→a`` of this node's confirmed, not cancelled
orders, plus the orders **in flight**: a reservation is taken before the order is placed (importer: before the
remote PlaceOrder; exporter: inside the PlaceOrder transaction) and either confirmed or released.

Rule (worst case over the orders in flight): with ``up``/``down`` the sums of in-flight reservations raising/
lowering ``net``, an order of signed value ``v`` is refused when ``v > 0`` and ``net + up + v > limit``, or ``v < 0``
and ``net − down + v < −limit`` — so however the orders in flight end, ``|net|`` of confirmed orders never passes the
limit (an order that moves the balance back toward zero is always admitted). The refusal is FAILED_PRECONDITION
``IMBALANCE_LIMIT`` with ErrorInfo metadata ``balance`` (worst-case net seen from the order's exporter), ``limit``,
``headroom`` (= limit − balance), ``order_value``, ``exporter_wl``, ``importer_wl``.

Concurrency: the check-and-reserve of a pair is a few Decimal operations under that pair's ``threading.Lock``,
never held across an ``await``: it is atomic for coroutines on the event loop and for the order desk's guard,
which runs in a ``TxRunner`` worker thread (an ``asyncio.Lock`` could not be taken there).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from wl_node.policy.state import PolicyState
from xwl_runtime.errors import FailedPrecondition

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass
class _Book:
    """One pair's balance: confirmed net (a's exports minus b's) and in-flight reservations."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    net: Decimal = ZERO
    up: Decimal = ZERO
    down: Decimal = ZERO

    def in_flight(self, value: Decimal, *, add: bool) -> None:
        """Add (or take back) an order of signed ``value`` in flight: ``up`` if it raises ``net``, else ``down``.

        The caller holds ``lock``.
        """
        delta = value if add else -value
        if value > 0:
            self.up += delta
        else:
            self.down += delta


@dataclass(frozen=True)
class Balance:
    """A pair's balance as seen from ``exporter_wl`` (positive: it exported more than it imported)."""

    exporter_wl: str
    importer_wl: str
    net: Decimal
    in_flight_up: Decimal
    in_flight_down: Decimal
    limit: Decimal | None


class Reservation:
    """Value reserved for one order in flight; ``confirm()`` or ``release()`` it exactly once (later calls no-op).

    As a context manager it is released when the block raises or ends without ``confirm()``.
    """

    __slots__ = ("guard", "key", "value", "exporter_wl", "importer_wl", "_open")

    def __init__(self, guard: LocalGuard, key: tuple[str, str], value: Decimal, exporter_wl: str,
                 importer_wl: str) -> None:
        self.guard = guard
        self.key = key
        self.value = value
        self.exporter_wl = exporter_wl
        self.importer_wl = importer_wl
        self._open = True

    @property
    def open(self) -> bool:
        return self._open

    def confirm(self) -> None:
        """The order was confirmed: its value moves from in flight to the balance."""
        self._close(confirmed=True)

    def release(self) -> None:
        """The order was denied, aborted or never sent: its value is freed."""
        self._close(confirmed=False)

    def _close(self, *, confirmed: bool) -> None:
        book = self.guard._book(self.key)  # noqa: SLF001 - the reservation belongs to its guard
        with book.lock:
            if not self._open:
                return
            self._open = False
            book.in_flight(self.value, add=False)
            if confirmed:
                book.net += self.value

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class LocalGuard:
    """Per-pair balances of this node's orders, with synchronous admission (see the module docstring)."""

    def __init__(self, state: PolicyState) -> None:
        self._state = state
        self.wl_id = state.wl_id
        self._books: dict[tuple[str, str], _Book] = {}
        self._books_lock = threading.Lock()
        self.ready = False
        """False until the balances were rebuilt from the node's ledger; reservations are refused until then."""

    # --- valuation ----------------------------------------------------------------------------------------------
    def _book(self, key: tuple[str, str]) -> _Book:
        book = self._books.get(key)
        if book is None:
            with self._books_lock:
                book = self._books.setdefault(key, _Book())
        return book

    def value_of(self, exporter_wl: str, amount: Decimal) -> Decimal:
        """``amount`` of the exporter's currency in the reference unit (FAILED_PRECONDITION if unknown)."""
        wl = self._state.white_label(exporter_wl)
        try:
            rate = Decimal(wl.reference_rate) if wl is not None else None
        except InvalidOperation:
            rate = None
        if rate is None or not rate.is_finite() or rate <= 0:
            raise FailedPrecondition(f"no reference rate known for {exporter_wl}", reason="NO_REFERENCE_RATE",
                                     metadata={"exporter_wl": exporter_wl})
        return amount * rate

    def limit_of(self, exporter_wl: str, importer_wl: str) -> Decimal | None:
        other = importer_wl if exporter_wl == self.wl_id else exporter_wl
        pair = self._state.pair(other)
        if pair is None:
            return None
        try:
            limit = Decimal(pair.imbalance_limit)
        except InvalidOperation:
            return None
        return limit if limit.is_finite() and limit >= 0 else None

    @staticmethod
    def _key(exporter_wl: str, importer_wl: str) -> tuple[tuple[str, str], int]:
        """The pair key and the sign of an export by ``exporter_wl`` on its net."""
        if exporter_wl < importer_wl:
            return (exporter_wl, importer_wl), 1
        return (importer_wl, exporter_wl), -1

    # --- admission ----------------------------------------------------------------------------------------------
    def reserve(self, exporter_wl: str, importer_wl: str, amount: Decimal) -> Reservation:
        """Reserve an order of ``amount`` (exporter's currency) or raise FAILED_PRECONDITION ``IMBALANCE_LIMIT``."""
        if not self.ready:
            raise FailedPrecondition("the local imbalance guard is still loading the ledger",
                                     reason="RISK_GUARD_STARTING")
        limit = self.limit_of(exporter_wl, importer_wl)
        if limit is None:
            raise FailedPrecondition(f"no imbalance limit known for {exporter_wl}->{importer_wl}",
                                     reason="NO_PAIR_POLICY",
                                     metadata={"exporter_wl": exporter_wl, "importer_wl": importer_wl})
        key, sign = self._key(exporter_wl, importer_wl)
        value = sign * self.value_of(exporter_wl, amount)
        book = self._book(key)
        with book.lock:
            if value > 0:
                worst = book.net + book.up + value
                refused = worst > limit
            else:
                worst = book.net + book.down + value
                refused = worst < -limit
            if not refused:
                book.in_flight(value, add=True)
                return Reservation(self, key, value, exporter_wl, importer_wl)
            seen = sign * (worst - value)  # the worst-case balance before this order, from the exporter's side
        raise FailedPrecondition(
            f"the order would take the {key[0]}/{key[1]} imbalance past its limit",
            reason="IMBALANCE_LIMIT",
            metadata={"balance": _fmt(seen), "limit": _fmt(limit), "headroom": _fmt(limit - seen),
                      "order_value": _fmt(abs(value)), "exporter_wl": exporter_wl, "importer_wl": importer_wl},
        )

    def hold(self, exporter_wl: str, importer_wl: str, amount: Decimal) -> Reservation:
        """Count an order already in flight (e.g. a checkout left PENDING by a restart) without admission checks.

        The order was admitted before; refusing it now would change nothing, but it must count against the
        headroom of new orders until it is confirmed or released.
        """
        key, sign = self._key(exporter_wl, importer_wl)
        value = sign * self.value_of(exporter_wl, amount)
        book = self._book(key)
        with book.lock:
            book.in_flight(value, add=True)
        return Reservation(self, key, value, exporter_wl, importer_wl)

    def record(self, exporter_wl: str, importer_wl: str, amount: Decimal) -> None:
        """Add a confirmed order that had no reservation (negative ``amount``: a cancellation/compensation)."""
        key, sign = self._key(exporter_wl, importer_wl)
        value = sign * self.value_of(exporter_wl, amount)
        book = self._book(key)
        with book.lock:
            book.net += value

    def record_reversal(self, exporter_wl: str, importer_wl: str, amount: Decimal) -> None:
        """A confirmed order of ``amount`` was cancelled or compensated: take it out of the balance."""
        self.record(exporter_wl, importer_wl, -amount)

    def balance(self, exporter_wl: str, importer_wl: str) -> Balance:
        """The pair's balance seen from ``exporter_wl``."""
        key, sign = self._key(exporter_wl, importer_wl)
        book = self._book(key)
        with book.lock:
            net, up, down = book.net, book.up, book.down
        if sign < 0:
            net, up, down = -net, -down, -up
        return Balance(exporter_wl, importer_wl, net, up, -down, self.limit_of(exporter_wl, importer_wl))

    def load(self, confirmed: Iterable[tuple[str, str, Decimal]]) -> None:
        """Set the confirmed balances from (exporter, importer, amount) facts; reservations in flight are kept."""
        totals: dict[tuple[str, str], Decimal] = {}
        for exporter, importer, amount in confirmed:
            key, sign = self._key(exporter, importer)
            try:
                value = sign * self.value_of(exporter, amount)
            except FailedPrecondition:
                log.warning("no reference rate for a ledger entry; not counted",
                            extra={"fields": {"exporter_wl": exporter}})
                continue
            totals[key] = totals.get(key, ZERO) + value
        for key, total in totals.items():
            book = self._book(key)
            with book.lock:
                book.net = total
        self.ready = True


def _fmt(value: Decimal) -> str:
    return format(value.normalize() if value != 0 else ZERO, "f")
