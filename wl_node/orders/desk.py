"""The exporter's order desk: PlaceOrder, CancelOrder and GetOrder as one transaction each.

PlaceOrder, in ONE transaction (so a crash leaves either everything or nothing):

1. claim the idempotency key (or return the stored outcome / refuse a reused key);
2. judge the pair and direction policy, signals and guards → DENIED with a reason;
3. check the price and FX version the importer showed → FAILED_PRECONDITION (nothing stored) with the current
   price and FX version in the ErrorInfo metadata, so the importer can re-price;
4. reserve stock with one conditional UPDATE → DENIED ``OUT_OF_STOCK`` when short;
4b. a direction in a rollout stage: cohort, maximum order value and daily value cap
   (``wl_node.orders.export_caps``) → FAILED_PRECONDITION, everything rolled back (nothing stored);
5. write the order (with correlation id, policy version, FX version), the export ledger entry and the ledger-event
   outbox row, and store the response under the key.

CancelOrder (compensation) restores stock exactly once per order, whatever the number of cancel calls. GetOrder
serves reconciliation by order id or by the PlaceOrder key, only for the importer that placed the order.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from wl_node.policy.state import PolicyState
from wl_node.rollout.rules import RolloutRules, StageRule
from xporty.common.v1 import money_pb2
from xporty.cp.v1 import telemetry_pb2
from xporty.trader.v1 import order_pb2, trader_service_pb2
from xwl_runtime import correlation
from xwl_runtime.clock import Clock
from xwl_runtime.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound, echo
from xwl_runtime.identity import Identity
from xwl_runtime.text import bounded, human_text
from xwl_runtime.tokens import Claims

from .events import OUTBOX_INSERT, append_event, event_values
from .export_caps import charge as charge_rollout
from .gate import OrderGuard, OrderIntent, PairDecision, SettlingGuard, SignalGate, judge_pair, run_guards
from .idempotency import COMPLETE_SET, MAX_KEY_CHARS, IdempotencyRecords, check_key, fingerprint
from .rawsql import Sql, db_time, is_sqlite
from .stock import OfferStock
from .tables import orders
from .txn import TxRunner

log = logging.getLogger(__name__)

PLACE = "PlaceOrder"
CANCEL = "CancelOrder"
MAX_QUANTITY = 1_000_000
MAX_ORDER_ID_CHARS = 128
MAX_CURRENCY_CHARS, MAX_AMOUNT_CHARS = 16, 64
CONFIRMED, DENIED, CANCELLED = "CONFIRMED", "DENIED", "CANCELLED"
_STATUS = {CONFIRMED: order_pb2.ORDER_STATUS_CONFIRMED, DENIED: order_pb2.ORDER_STATUS_DENIED,
           CANCELLED: order_pb2.ORDER_STATUS_CANCELLED}

_ORDER_COLUMNS = ("order_id", "importer_wl", "exporter_wl", "idem_key", "offer_id", "quantity", "currency",
                  "unit_price", "total", "status", "reason", "policy_version", "fx_version", "correlation_id",
                  "created_at", "updated_at")
_INSERT_ORDER_TEXT = (f"INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}) "
                      f"VALUES ({', '.join(':' + c for c in _ORDER_COLUMNS)})")
_INSERT_LEDGER_TEXT = (
    "INSERT INTO order_ledger (entry_id, order_id, kind, counterparty_wl, offer_id, quantity, currency, amount, "
    "policy_version, fx_version, correlation_id, created_at) VALUES (:entry_id, :order_id, :ledger_kind, "
    ":importer_wl, :offer_id, :quantity, :currency, :ledger_amount, :policy_version, :fx_version, "
    ":correlation_id, :created_at)"
)
_INSERT_ORDER = Sql(_INSERT_ORDER_TEXT)
_INSERT_LEDGER = Sql(_INSERT_LEDGER_TEXT)
_OUTBOX = Sql(OUTBOX_INSERT)
_COMPLETE = Sql(COMPLETE_SET)
# PostgreSQL: the order, its ledger entry, its event and the stored response in ONE statement (one round trip;
# data-modifying CTEs all run, in the same transaction). SQLite runs the four statements (µs each, in-process).
_WRITE_CONFIRMED_PG = Sql(
    f"WITH o AS ({_INSERT_ORDER_TEXT}), l AS ({_INSERT_LEDGER_TEXT}), e AS ({OUTBOX_INSERT}) {COMPLETE_SET}")
_WRITE_DENIED_PG = Sql(f"WITH o AS ({_INSERT_ORDER_TEXT}) {COMPLETE_SET}")
_SELECT_FOR_CANCEL = sa.select(orders).where(orders.c.order_id == sa.bindparam("b_id"),
                                             orders.c.importer_wl == sa.bindparam("b_importer")).with_for_update()
_CANCEL = (
    sa.update(orders).where(orders.c.order_id == sa.bindparam("b_id"), orders.c.status == CONFIRMED)
    .values(status=CANCELLED, reason=sa.bindparam("b_reason"), updated_at=sa.bindparam("b_now"))
)
_BY_ORDER_ID = sa.select(orders).where(orders.c.order_id == sa.bindparam("b_id"))

StillWanted = Callable[[], bool]
"""False once the caller's deadline has passed: the desk then rolls back instead of committing an unseen order."""


def _money(currency: str, amount: Decimal | str) -> money_pb2.Money:
    return money_pb2.Money(currency=currency, amount=amount if isinstance(amount, str) else format(amount, "f"))


def order_from_row(m: Mapping[str, Any] | sa.RowMapping) -> order_pb2.Order:
    """The wire form of an ``orders`` row mapping."""
    order = order_pb2.Order(
        order_id=m["order_id"], idempotency_key=m["idem_key"], importer_wl=m["importer_wl"],
        exporter_wl=m["exporter_wl"], offer_id=m["offer_id"], quantity=m["quantity"],
        unit_price=_money(m["currency"], m["unit_price"]), total=_money(m["currency"], m["total"]),
        status=_STATUS[m["status"]], reason=m["reason"], policy_version=m["policy_version"],
        fx_version=m["fx_version"], correlation_id=m["correlation_id"],
    )
    order.create_time.FromDatetime(m["created_at"])
    order.update_time.FromDatetime(m["updated_at"])
    return order


def _importer(caller: Identity) -> str:
    """The importer an order belongs to: the calling node's WL (only nodes pass the authorization table)."""
    return caller.wl_id


def validate_place(request: trader_service_pb2.PlaceOrderRequest) -> Decimal:
    """INVALID_ARGUMENT naming the field; returns the expected unit price."""
    check_key(request.idempotency_key)
    if not request.offer_id or len(request.offer_id) > 128:
        raise InvalidArgument.field("offer_id", "must be 1..128 characters")
    if not 1 <= request.quantity <= MAX_QUANTITY:
        raise InvalidArgument.field("quantity", f"must be 1..{MAX_QUANTITY}")
    if not request.expected_unit_price.currency:
        raise InvalidArgument.field("expected_unit_price.currency", "required")
    bounded("expected_unit_price.currency", request.expected_unit_price.currency, max_chars=MAX_CURRENCY_CHARS)
    bounded("expected_unit_price.amount", request.expected_unit_price.amount, max_chars=MAX_AMOUNT_CHARS)
    try:
        price = Decimal(request.expected_unit_price.amount)
    except InvalidOperation:
        raise InvalidArgument.field("expected_unit_price.amount", "not a decimal number") from None
    if not price.is_finite() or price <= 0:
        raise InvalidArgument.field("expected_unit_price.amount", "must be > 0")
    return price


class OrderDesk:
    """Domain service behind TraderService's order RPCs (the servicer verifies the JWT and delegates here)."""

    def __init__(
        self,
        *,
        runner: TxRunner,
        state: PolicyState,
        stock: OfferStock,
        clock: Clock,
        idempotency: IdempotencyRecords | None = None,
        signal_gate: SignalGate | None = None,
        guards: Sequence[OrderGuard] = (),
        rollout: RolloutRules | None = None,
    ) -> None:
        self._rollout = rollout if rollout is not None else RolloutRules(state)  # always enforced from the view
        self._runner = runner
        self._state = state
        self._stock = stock
        self._clock = clock
        self._idem = idempotency or IdempotencyRecords()
        self._signal_gate = signal_gate
        self._guards = list(guards)
        self._settling = [g for g in self._guards if isinstance(g, SettlingGuard)]  # checked once, not per order
        self.wl_id = state.wl_id

    # --- PlaceOrder ----------------------------------------------------------------------------------------
    async def place(
        self,
        caller: Identity,
        request: trader_service_pb2.PlaceOrderRequest,
        claims: Claims | None = None,
        *,
        still_wanted: StillWanted | None = None,
    ) -> order_pb2.Order:
        """Confirm or deny an order; idempotent on (caller, key)."""
        importer = _importer(caller)
        expected_price = validate_place(request)
        fp = fingerprint(request)
        cid = correlation.get() or correlation.new_correlation_id()
        # Policy is judged on the loop thread (PolicyState is not thread-safe) right before the transaction.
        decision = judge_pair(self._state, self.wl_id, importer, self._signal_gate)
        rule = self._rollout.rule(self.wl_id, importer)
        who = caller.spiffe_id
        guarded: list[OrderIntent] = []  # the intent the guards admitted in the last run of ``txn``
        decided = [False]  # True once ``txn`` returned: an exception after that is the commit's, outcome unknown

        def txn(conn: sa.Connection) -> order_pb2.Order:
            guarded.clear()
            decided[0] = False
            now = self._clock.now()
            replay = self._idem.claim(conn, caller=who, method=PLACE, key=request.idempotency_key,
                                      fingerprint=fp, correlation_id=cid, now=now)
            if replay is not None and replay.response is not None:
                return order_pb2.Order.FromString(replay.response)
            order = self._decide(conn, importer, who, request, expected_price, decision, cid, now, guarded, rule)
            if still_wanted is not None and not still_wanted():
                raise Aborted("caller deadline passed before commit", reason="DEADLINE_PASSED")
            decided[0] = True
            return order

        try:
            order = await self._runner.tx(txn)
        except IntegrityError:
            self._rolled_back(guarded, decided)
            # The key's idempotency row was purged after retention but its order still exists.
            raise InvalidArgument("idempotency_key belongs to an order older than the retention period",
                                  reason="IDEMPOTENCY_KEY_EXPIRED", metadata={"field": "idempotency_key"}) from None
        except BaseException:
            self._rolled_back(guarded, decided)
            raise
        if guarded:  # committed: the guards learn the outcome now instead of looking it up later
            self._settle_guards(guarded[0], order.order_id, confirmed=order.status == order_pb2.ORDER_STATUS_CONFIRMED)
        if log.isEnabledFor(logging.DEBUG):  # hot path: one line per order only when asked for
            log.debug("order placed", extra={"fields": {
                "order_id": order.order_id, "importer_wl": importer,
                "status": order_pb2.OrderStatus.Name(order.status), "reason": order.reason,
                "quantity": order.quantity, "policy_version": order.policy_version, "fx_version": order.fx_version,
                "correlation_id": cid}})
        return order

    def _rolled_back(self, guarded: list[OrderIntent], decided: list[bool]) -> None:
        """The transaction failed: if it failed inside ``txn`` nothing was committed and the guards are told so;
        a failure of the commit itself leaves the outcome unknown and the guards resolve it by looking it up."""
        if guarded and not decided[0]:
            self._settle_guards(guarded[0], None, confirmed=False)

    def _settle_guards(self, intent: OrderIntent, order_id: str | None, *, confirmed: bool) -> None:
        for guard in self._settling:
            guard.settle(intent, order_id, confirmed)

    def _decide(
        self,
        conn: sa.Connection,
        importer: str,
        who: str,
        request: trader_service_pb2.PlaceOrderRequest,
        expected_price: Decimal,
        decision: PairDecision,
        cid: str,
        now: dt.datetime,
        guarded: list[OrderIntent],
        rule: StageRule | None = None,
    ) -> order_pb2.Order:
        terms = self._stock.terms(conn, request.offer_id)
        currency = terms.currency if terms else request.expected_unit_price.currency
        price = terms.unit_price if terms else expected_price
        reason = decision.deny_reason
        if reason is None and terms is None:
            reason = "OFFER_NOT_FOUND"
        if reason is None and terms is not None and terms.published_at is not None \
                and now - terms.published_at < decision.export_delay:
            reason = "OFFER_NOT_YET_EXPORTABLE"
        if reason is None and terms is not None:
            stale = (terms.currency != request.expected_unit_price.currency or terms.unit_price != expected_price
                     or decision.fx_version != request.expected_fx_version)
            if stale:
                raise FailedPrecondition(
                    "the price or FX version the importer showed is not current",
                    reason="STALE_PRICE",
                    metadata={"current_unit_price": format(terms.unit_price, "f"), "currency": terms.currency,
                              "current_fx_version": str(decision.fx_version), "offer_id": request.offer_id},
                )
        total = price * request.quantity
        if reason is None:
            intent = OrderIntent(self.wl_id, importer, request.offer_id, request.quantity, currency, total, cid,
                                 request.buyer_cohort_hash)
            reason = run_guards(conn, self._guards, intent)
            guarded.append(intent)
        if reason is None and not self._stock.reserve(conn, request.offer_id, request.quantity):
            reason = "OUT_OF_STOCK"
        if reason is None and rule is not None:  # raises: the stock reservation above rolls back with it
            charge_rollout(conn, rule, request.buyer_cohort_hash, total, now)
        status = DENIED if reason else CONFIRMED
        order_id = "ord_" + uuid.uuid4().hex
        values: dict[str, Any] = dict(
            order_id=order_id, importer_wl=importer, exporter_wl=self.wl_id, idem_key=request.idempotency_key,
            offer_id=request.offer_id, quantity=request.quantity, currency=currency,
            unit_price=format(price, "f"), total=format(total, "f"), status=status, reason=reason or "",
            policy_version=decision.policy_version, fx_version=decision.fx_version, correlation_id=cid,
            created_at=now, updated_at=now,
        )
        order = order_from_row(values)
        sqlite_db = is_sqlite(conn)
        stamp = db_time(sqlite_db, now)
        params = {**values, "created_at": stamp, "updated_at": stamp, "caller": who, "method": PLACE,
                  "response": order.SerializeToString()}
        if status == CONFIRMED:
            params.update(entry_id="led_" + uuid.uuid4().hex, ledger_kind="EXPORT", ledger_amount=values["total"])
            params.update(event_values(
                kind=telemetry_pb2.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, wl_id=self.wl_id, order_id=order_id,
                exporter_wl=self.wl_id, importer_wl=importer, amount=order.total, quantity=request.quantity,
                correlation_id=cid, now=now, created_at=stamp))
        if not sqlite_db:
            (_WRITE_CONFIRMED_PG if status == CONFIRMED else _WRITE_DENIED_PG).run(conn, params)
            return order
        _INSERT_ORDER.run(conn, params)
        if status == CONFIRMED:
            _INSERT_LEDGER.run(conn, params)
            _OUTBOX.run(conn, params)
        _COMPLETE.run(conn, params)
        return order

    @staticmethod
    def _ledger(conn: sa.Connection, order: Mapping[str, Any] | sa.RowMapping, *, kind: str, amount: Decimal, cid: str,
                now: dt.datetime) -> None:
        _INSERT_LEDGER.run(conn, dict(
            entry_id="led_" + uuid.uuid4().hex, order_id=order["order_id"], ledger_kind=kind,
            importer_wl=order["importer_wl"], offer_id=order["offer_id"], quantity=order["quantity"],
            currency=order["currency"], ledger_amount=format(amount, "f"), policy_version=order["policy_version"],
            fx_version=order["fx_version"], correlation_id=cid, created_at=db_time(is_sqlite(conn), now),
        ))

    # --- CancelOrder ---------------------------------------------------------------------------------------
    async def cancel(
        self, caller: Identity, request: trader_service_pb2.CancelOrderRequest, claims: Claims | None = None
    ) -> order_pb2.Order:
        """Cancel a confirmed order and restore its stock (once); a cancelled or denied order is returned as is."""
        importer = _importer(caller)
        check_key(request.idempotency_key)
        if not request.order_id:
            raise InvalidArgument.field("order_id", "required")
        bounded("order_id", request.order_id, max_chars=MAX_ORDER_ID_CHARS)
        human_text("reason", request.reason, max_chars=64, required=False)
        fp = fingerprint(request)
        cid = correlation.get() or correlation.new_correlation_id()
        who = caller.spiffe_id

        def txn(conn: sa.Connection) -> order_pb2.Order:
            now = self._clock.now()
            replay = self._idem.claim(conn, caller=who, method=CANCEL, key=request.idempotency_key,
                                      fingerprint=fp, correlation_id=cid, now=now)
            if replay is not None and replay.response is not None:
                return order_pb2.Order.FromString(replay.response)
            row = conn.execute(_SELECT_FOR_CANCEL, {"b_id": request.order_id, "b_importer": importer}
                               ).mappings().first()
            if row is None:
                raise NotFound(f"order {echo(request.order_id)} not found", reason="ORDER_NOT_FOUND")
            if row["status"] == CONFIRMED:
                changed = conn.execute(_CANCEL, {"b_id": row["order_id"], "b_now": now,
                                                 "b_reason": request.reason or "CANCELLED_BY_IMPORTER"})
                if changed.rowcount == 1:  # the guard that makes stock come back exactly once
                    self._stock.release(conn, row["offer_id"], row["quantity"])
                    self._ledger(conn, row, kind="EXPORT_REVERSAL", amount=-Decimal(row["total"]), cid=cid, now=now)
                    append_event(conn, kind=telemetry_pb2.LEDGER_EVENT_KIND_ORDER_CANCELLED, wl_id=self.wl_id,
                                 order_id=row["order_id"], exporter_wl=self.wl_id, importer_wl=importer,
                                 amount=_money(row["currency"], row["total"]), quantity=row["quantity"],
                                 correlation_id=cid, now=now)
                row = conn.execute(_BY_ORDER_ID, {"b_id": row["order_id"]}).mappings().one()
            order = order_from_row(row)
            self._idem.complete(conn, caller=who, method=CANCEL, key=request.idempotency_key,
                                order_id=order.order_id, response=order.SerializeToString())
            return order

        order = await self._runner.tx(txn)
        log.info("order cancel", extra={"fields": {"order_id": order.order_id, "importer_wl": importer,
                                                   "status": order_pb2.OrderStatus.Name(order.status),
                                                   "correlation_id": cid}})
        return order

    # --- GetOrder ------------------------------------------------------------------------------------------
    async def get(
        self, caller: Identity, request: trader_service_pb2.GetOrderRequest, claims: Claims | None = None
    ) -> order_pb2.Order:
        """The caller's order by id or by PlaceOrder key; NOT_FOUND for unknown ids and other importers' orders."""
        importer = _importer(caller)
        bounded("order_id", request.order_id, max_chars=MAX_ORDER_ID_CHARS)
        bounded("idempotency_key", request.idempotency_key, max_chars=MAX_KEY_CHARS)
        if request.order_id:
            cond = orders.c.order_id == request.order_id
        elif request.idempotency_key:
            cond = orders.c.idem_key == request.idempotency_key
        else:
            raise InvalidArgument.field("order_id", "order_id or idempotency_key is required")

        def read(conn: sa.Connection) -> sa.RowMapping | None:
            return conn.execute(sa.select(orders).where(cond, orders.c.importer_wl == importer)).mappings().first()

        row = await self._runner.read(read)
        if row is None:
            raise NotFound("order not found", reason="ORDER_NOT_FOUND")
        return order_from_row(row)
