"""The importer's Checkout: local idempotency, early refusal, PlaceOrder at the exporter, finalize or abort.

Flow of ``checkout`` (each numbered step is one short transaction or one remote call):

0. validate (INVALID_ARGUMENT naming the field; nothing stored);
1. refuse early, storing nothing: unknown/hidden offer, offer unavailable, pair policy or enforcer says no
   (FAILED_PRECONDITION with the reason), exporter circuit open or no cached token (UNAVAILABLE), the direction's
   rollout stage refuses the buyer or the value (FAILED_PRECONDITION ``ROLLOUT_*``, ``wl_node.rollout``), the local
   imbalance guard's reservation refused (FAILED_PRECONDITION ``IMBALANCE_LIMIT``) — unless the key already has a
   stored checkout, which is then returned as below;
2. commit the PENDING checkout (so a crash from here on is found by the reconciler). If the key is taken, this is
   a replay: the stored checkout is returned, a reused key with another request is refused (INVALID_ARGUMENT
   ``IDEMPOTENCY_KEY_REUSED``), and a key whose checkout is still PENDING gets ABORTED with RetryInfo;
3. PlaceOrder at the exporter, key ``order_key`` (= checkout id), with a deadline from the caller's remaining
   time (default 300 ms), retries on UNAVAILABLE/DEADLINE_EXCEEDED, through the exporter's breaker;
4. CONFIRMED → COMPLETED with the local sale, import ledger entry and ledger event in one transaction; if that
   fails, CANCELLED with a CancelOrder in the durable outbox; if even that fails, the checkout stays PENDING and
   the reconciler compensates. DENIED or a definite refusal → FAILED with the reason. No answer (transport failure
   after sending) → stays PENDING ("IN_DOUBT") for the reconciler; the caller gets the PENDING checkout.

Local imbalance guard (importer side): the order's value is reserved at step 1 and counts as in flight until the
checkout's outcome is known: confirmed when the import is finalized, released when it fails, is compensated, or
was never sent. An in-doubt checkout keeps its reservation until the reconciler settles it; after a restart,
``adopt_pending`` holds a reservation for every checkout still PENDING (the reconciler calls it before its first
round), so the orders in flight always count against the pair's headroom.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa

from wl_node.orders.gate import PairDecision, SignalGate, judge_pair
from wl_node.orders.idempotency import check_key, fingerprint
from wl_node.orders.txn import TxRunner
from wl_node.peers.client import PeerError, PeerUnavailable, TraderPeers
from wl_node.policy.state import PolicyState
from wl_node.rollout.rules import RolloutRules
from xporty.common.v1 import money_pb2
from xporty.node.v1 import storefront_pb2, storefront_service_pb2
from xporty.trader.v1 import order_pb2
from xporty.trader.v1 import trader_service_pb2 as trader_pb
from xwl_runtime import correlation
from xwl_runtime.clock import Clock
from xwl_runtime.cohort import cohort_hash
from xwl_runtime.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    XcwlError,
    echo,
)
from xwl_runtime.fieldcrypt import PREFIX, Keyring
from xwl_runtime.grpc_codes import OUTCOME_UNKNOWN
from xwl_runtime.identity import Identity
from xwl_runtime.text import bounded

from . import store
from .import_caps import ImportCaps
from .offers import ImportedOffers, ImportedOfferTerms
from .tables import BUYER_REFERENCE_AAD, PENDING

log = logging.getLogger(__name__)

MAX_QUANTITY = 1_000_000
MAX_CHECKOUT_ID_CHARS = 128
PENDING_RETRY_AFTER_S = 0.5


def validate(request: storefront_service_pb2.CheckoutRequest) -> None:
    check_key(request.idempotency_key)
    if not request.imported_offer_id or len(request.imported_offer_id) > 200:
        raise InvalidArgument.field("imported_offer_id", "must be 1..200 characters")
    if not 1 <= request.quantity <= MAX_QUANTITY:
        raise InvalidArgument.field("quantity", f"must be 1..{MAX_QUANTITY}")
    if not request.buyer_reference or len(request.buyer_reference) > 128 or not request.buyer_reference.isprintable():
        raise InvalidArgument.field("buyer_reference", "must be 1..128 printable characters (opaque, never PII)")


class GuardReservation(Protocol):
    """Value reserved for one order in flight (``wl_node.risk.local_guard.Reservation`` fits)."""

    def confirm(self) -> None: ...

    def release(self) -> None: ...


class ImportGuard(Protocol):
    """The node's local imbalance guard (``wl_node.risk.local_guard.LocalGuard`` fits)."""

    def reserve(self, exporter_wl: str, importer_wl: str, amount: Decimal) -> GuardReservation: ...

    def hold(self, exporter_wl: str, importer_wl: str, amount: Decimal) -> GuardReservation: ...


def _order_amount(row: store.Row) -> Decimal:
    """The order's value in the exporter's currency (what both guards of the pair count)."""
    return Decimal(row["source_unit_price"]) * int(row["quantity"])


class _Joined:
    """Two reservations resolved together (the local guard's and the rollout's daily cap)."""

    def __init__(self, *parts: GuardReservation) -> None:
        self._parts = parts

    def confirm(self) -> None:
        for part in self._parts:
            part.confirm()

    def release(self) -> None:
        for part in self._parts:
            part.release()


def _joined(*parts: GuardReservation | None) -> GuardReservation | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else _Joined(*present)


class CheckoutService:
    """Domain service behind StorefrontService.Checkout / GetCheckout."""

    def __init__(
        self,
        *,
        runner: TxRunner,
        state: PolicyState,
        offers: ImportedOffers,
        peers: TraderPeers,
        clock: Clock,
        signal_gate: SignalGate | None = None,
        on_compensation: Callable[[], None] | None = None,
        import_guard: ImportGuard | None = None,
        keyring: Keyring | None = None,
        rollout: ImportCaps | None = None,
    ) -> None:
        self._rollout = rollout or ImportCaps(RolloutRules(state), runner, clock, state.wl_id)
        self._import_guard = import_guard
        self._keyring = keyring
        self._runner = runner
        self._state = state
        self._offers = offers
        self._peers = peers
        self._clock = clock
        self._signal_gate = signal_gate
        self._on_compensation = on_compensation  # e.g. the outbox's kick(), so delivery starts at once
        self._started_at = clock.now()
        self._reservations: dict[str, GuardReservation] = {}
        """checkout id → the local guard's reservation of a checkout in flight."""
        self.wl_id = state.wl_id

    # --- personal data at rest ------------------------------------------------------------------------------------
    def _seal(self, buyer_reference: str) -> str:
        """The buyer reference as stored: encrypted (it may hold an e-mail or a CPF, whatever the field says)."""
        return self._keyring.encrypt(buyer_reference, BUYER_REFERENCE_AAD) if self._keyring else buyer_reference

    def _wire(self, row: store.Row) -> storefront_pb2.Checkout:
        out = store.checkout_from_row(row)
        if self._keyring is not None and out.buyer_reference.startswith(PREFIX + ":"):
            out.buyer_reference = self._keyring.decrypt(out.buyer_reference, BUYER_REFERENCE_AAD)
        return out

    # --- the local imbalance guard ------------------------------------------------------------------------------
    def _reserve(self, offer: ImportedOfferTerms, quantity: int) -> GuardReservation | None:
        if self._import_guard is None:
            return None
        return self._import_guard.reserve(offer.exporter_wl, self.wl_id, offer.source_unit_price * quantity)

    def _resolve_reservation(self, checkout_id: str, *, confirmed: bool) -> bool:
        """Confirm or release the checkout's reservation; False if it had none (e.g. settled elsewhere)."""
        reservation = self._reservations.pop(checkout_id, None)
        if reservation is None:
            return False
        (reservation.confirm if confirmed else reservation.release)()
        return True

    @property
    def reservations_in_flight(self) -> int:
        """Checkouts whose value the local guard counts as in flight."""
        return len(self._reservations)

    async def adopt_pending(self) -> int:
        """Hold a reservation for every PENDING checkout that has none (after a restart); returns how many."""
        if self._import_guard is None:
            return 0
        # Only what an earlier run left: every checkout of this run reserved before its row existed.
        rows = await self._runner.read(lambda conn: store.pending_before(conn, self._started_at))
        adopted = 0
        for row in rows:
            if row["checkout_id"] in self._reservations:  # adopted by an earlier call
                continue
            try:
                self._reservations[row["checkout_id"]] = self._import_guard.hold(
                    row["exporter_wl"], self.wl_id, _order_amount(row))
            except FailedPrecondition as err:  # no reference rate known yet: counted once the outcome is known
                log.warning("in-flight checkout not counted by the local guard", extra={"fields": {
                    "checkout_id": row["checkout_id"], "reason": err.reason,
                    "correlation_id": row["correlation_id"]}})
                continue
            adopted += 1
        return adopted

    def _replay(self, row: store.Row, fp: str) -> storefront_pb2.Checkout:
        if row["fingerprint"] != fp:
            raise InvalidArgument("idempotency_key was already used with a different request",
                                  reason="IDEMPOTENCY_KEY_REUSED", metadata={"field": "idempotency_key"})
        if row["status"] == PENDING:
            raise Aborted("a checkout with this idempotency_key is in progress; retry later",
                          retry_after_s=PENDING_RETRY_AFTER_S, reason="CHECKOUT_IN_PROGRESS",
                          metadata={"checkout_id": row["checkout_id"]})
        return self._wire(row)

    async def checkout(
        self, caller: Identity, request: storefront_service_pb2.CheckoutRequest, *,
        caller_remaining_s: float | None = None,
    ) -> storefront_pb2.Checkout:
        """Buy an imported offer; idempotent on (caller, idempotency_key)."""
        started = self._clock.monotonic()
        who = caller.spiffe_id
        validate(request)
        fp = fingerprint(request)
        try:
            offer, decision = await self._admit(request)
            daily = await self._rollout.admit(offer.exporter_wl, cohort_hash(self.wl_id, request.buyer_reference),
                                              offer.source_unit_price * request.quantity)
            try:
                reservation = _joined(self._reserve(offer, request.quantity), daily)
            except XcwlError:
                if daily is not None:
                    daily.release()
                raise
        except XcwlError:
            # A refusal now must not hide the stored outcome of an earlier request with this key.
            existing = await self._runner.read(lambda conn: store.by_key(conn, who, request.idempotency_key))
            if existing is not None:
                return self._replay(existing, fp)
            raise
        exporter = offer.exporter_wl

        cid = correlation.get() or correlation.new_correlation_id()
        checkout_id = "chk_" + uuid.uuid4().hex
        now = self._clock.now()
        values = dict(
            checkout_id=checkout_id, caller=who, idem_key=request.idempotency_key, fingerprint=fp,
            imported_offer_id=request.imported_offer_id, exporter_wl=exporter,
            source_offer_id=offer.source_offer_id, quantity=request.quantity,
            buyer_reference=self._seal(request.buyer_reference), source_currency=offer.source_currency,
            source_unit_price=format(offer.source_unit_price, "f"), fx_version=offer.fx_version,
            currency=offer.currency, total=format(offer.unit_price * request.quantity, "f"), status=PENDING,
            reason="", order_id=None, order_key=checkout_id, policy_version=decision.policy_version,
            correlation_id=cid, created_at=now, updated_at=now,
        )
        if reservation is not None:
            self._reservations[checkout_id] = reservation  # before the PENDING row exists (see adopt_pending)
        sent = [False]
        try:
            return await self._place(values, offer, request, who, fp, started, caller_remaining_s, sent)
        finally:
            if not sent[0]:  # no order can exist at the exporter: the reserved value is free again
                self._resolve_reservation(checkout_id, confirmed=False)

    async def _place(
        self, values: dict[str, Any], offer: ImportedOfferTerms, request: storefront_service_pb2.CheckoutRequest,
        who: str, fp: str, started: float, caller_remaining_s: float | None, sent: list[bool],
    ) -> storefront_pb2.Checkout:
        """Steps 2-4 for an admitted checkout; ``sent[0]`` is True once PlaceOrder may have reached the exporter."""
        exporter, checkout_id = offer.exporter_wl, values["checkout_id"]
        async with contextlib.AsyncExitStack() as slot:
            # One of the exporter's order slots (bulkhead) is taken BEFORE the PENDING row exists: waiting for it
            # stores and sends nothing, so the reconciler never sees a checkout whose order is still to be sent.
            try:
                wait_s = self._left(started, caller_remaining_s)
                await slot.enter_async_context(self._peers.order_slot(exporter, wait_s))
            except PeerUnavailable:
                existing = await self._runner.read(lambda conn: store.by_key(conn, who, request.idempotency_key))
                if existing is not None:
                    return self._replay(existing, fp)
                raise
            raced = await self._runner.tx(lambda conn: store.claim(conn, values))
            if raced is not None:
                return self._replay(raced, fp)

            place = trader_pb.PlaceOrderRequest(
                idempotency_key=checkout_id, offer_id=offer.source_offer_id, quantity=request.quantity,
                expected_unit_price=money_pb2.Money(currency=offer.source_currency,
                                                    amount=format(offer.source_unit_price, "f")),
                expected_fx_version=offer.fx_version,
                buyer_cohort_hash=cohort_hash(self.wl_id, request.buyer_reference),
            )
            sent[0] = True
            try:
                order = await self._peers.place_order(
                    exporter, place, self._peers.deadline(self._left(started, caller_remaining_s)))
            except PeerUnavailable as err:
                if err.sent:
                    return await self._in_doubt(values, err.reason)
                await self._runner.tx(lambda conn: store.forget_unsent(conn, checkout_id))
                sent[0] = False
                raise
            except PeerError as err:
                if err.code in OUTCOME_UNKNOWN:
                    return await self._in_doubt(values, err.code.name)
                # A definite answer from the exporter: no order exists for this key.
                return await self.settle_failed(values, err.reason or err.code.name, None)
        return await self.apply_outcome(values, order)

    def _left(self, started: float, caller_remaining_s: float | None) -> float | None:
        """What is left of the caller's time (None: no caller deadline)."""
        if caller_remaining_s is None:
            return None
        return caller_remaining_s - (self._clock.monotonic() - started)

    async def _admit(self, request: storefront_service_pb2.CheckoutRequest) -> tuple[ImportedOfferTerms, PairDecision]:
        """The early checks; each refusal is raised before anything is stored."""
        offer = await self._offers.get(request.imported_offer_id)
        if offer is None:
            raise NotFound(f"imported offer {echo(request.imported_offer_id)} not found", reason="OFFER_NOT_FOUND")
        exporter = offer.exporter_wl
        decision = judge_pair(self._state, exporter, self.wl_id, self._signal_gate)
        if decision.deny_reason:
            raise FailedPrecondition(f"importing from {exporter} is not allowed now: {decision.deny_reason}",
                                     reason=decision.deny_reason, metadata={"exporter_wl": exporter})
        self._peers.ensure_callable(exporter)  # UNAVAILABLE: circuit open / no token
        if not offer.available:
            raise FailedPrecondition("the offer is temporarily unavailable", reason="OFFER_UNAVAILABLE",
                                     metadata={"exporter_wl": exporter})
        return offer, decision

    async def apply_outcome(self, row: store.Row, order: order_pb2.Order) -> storefront_pb2.Checkout:
        """Settle a PENDING checkout from the exporter's order (also used by the reconciler)."""
        cid = row["correlation_id"]
        if order.status == order_pb2.ORDER_STATUS_CONFIRMED:
            now = self._clock.now()
            try:
                settled = await self._runner.tx(lambda conn: store.finalize(conn, row, order, self.wl_id, now))
            except sa.exc.SQLAlchemyError:
                log.exception("finalize failed; compensating", extra={"fields": {
                    "checkout_id": row["checkout_id"], "order_id": order.order_id, "correlation_id": cid}})
                return await self.compensate(row, order.order_id, "IMPORT_NOT_FINALIZED")
            if settled is None:
                return await self._current(row["checkout_id"])
            # The local imbalance guard: the reservation in flight becomes part of the balance. (Only a checkout of
            # this run finalizes, and each reserved before its order was sent; the reconciler only cancels or fails.)
            self._resolve_reservation(row["checkout_id"], confirmed=True)
            if log.isEnabledFor(logging.DEBUG):  # hot path: one line per checkout only when asked for
                log.debug("checkout completed", extra={"fields": {
                    "checkout_id": row["checkout_id"], "order_id": order.order_id,
                    "exporter_wl": row["exporter_wl"], "correlation_id": cid}})
            return self._wire(settled)
        if order.status == order_pb2.ORDER_STATUS_CANCELLED:
            return await self.settle_failed(row, order.reason or "ORDER_CANCELLED", order.order_id)
        return await self.settle_failed(row, order.reason or "ORDER_DENIED", order.order_id)

    async def compensate(self, row: store.Row, order_id: str, reason: str) -> storefront_pb2.Checkout:
        """CANCELLED locally + CancelOrder owed to the exporter (durable); PENDING stays if even this fails."""
        now = self._clock.now()
        try:
            settled = await self._runner.tx(lambda conn: store.compensate(conn, row, order_id, reason, now))
        except sa.exc.SQLAlchemyError:
            log.exception("compensation could not be recorded; the reconciler will retry", extra={"fields": {
                "checkout_id": row["checkout_id"], "order_id": order_id, "correlation_id": row["correlation_id"]}})
            return self._wire(row)
        self._resolve_reservation(row["checkout_id"], confirmed=False)  # cancelled on both sides: no trade
        if settled is None:
            return await self._current(row["checkout_id"])
        log.warning("checkout compensated", extra={"fields": {
            "checkout_id": row["checkout_id"], "order_id": order_id, "reason": reason,
            "correlation_id": row["correlation_id"]}})
        if self._on_compensation is not None:
            self._on_compensation()
        return self._wire(settled)

    async def settle_failed(self, row: store.Row, reason: str, order_id: str | None) -> storefront_pb2.Checkout:
        """PENDING → FAILED with ``reason`` (nothing sold)."""
        now = self._clock.now()
        settled = await self._runner.tx(lambda conn: store.fail(conn, row["checkout_id"], reason, order_id, now))
        self._resolve_reservation(row["checkout_id"], confirmed=False)
        if settled is None:
            return await self._current(row["checkout_id"])
        log.info("checkout failed", extra={"fields": {"checkout_id": row["checkout_id"], "reason": reason,
                                                      "correlation_id": row["correlation_id"]}})
        return self._wire(settled)

    async def _in_doubt(self, row: store.Row, why: str) -> storefront_pb2.Checkout:
        now = self._clock.now()
        await self._runner.tx(lambda conn: store.touch(conn, row["checkout_id"], "IN_DOUBT", now))
        log.warning("checkout in doubt; the reconciler will resolve it", extra={"fields": {
            "checkout_id": row["checkout_id"], "exporter_wl": row["exporter_wl"], "cause": why,
            "correlation_id": row["correlation_id"]}})
        return await self._current(row["checkout_id"])

    async def _current(self, checkout_id: str) -> storefront_pb2.Checkout:
        row = await self._runner.read(lambda conn: store.by_id(conn, checkout_id))
        if row is None:
            raise NotFound(f"checkout {echo(checkout_id)} not found", reason="CHECKOUT_NOT_FOUND")
        return self._wire(row)

    async def get(self, caller: Identity, request: storefront_service_pb2.GetCheckoutRequest
                  ) -> storefront_pb2.Checkout:
        """A checkout made by the caller (a checkout belongs to the app that made it)."""
        who = caller.spiffe_id
        if not request.checkout_id:
            raise InvalidArgument.field("checkout_id", "required")
        bounded("checkout_id", request.checkout_id, max_chars=MAX_CHECKOUT_ID_CHARS)
        row = await self._runner.read(lambda conn: store.by_id(conn, request.checkout_id))
        if row is None or row["caller"] != who:
            raise NotFound(f"checkout {echo(request.checkout_id)} not found", reason="CHECKOUT_NOT_FOUND")
        return self._wire(row)

