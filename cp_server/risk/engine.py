"""The ingest transaction: store verified events, move balances, evaluate thresholds, issue signals — atomically.

One transaction per PublishEvents batch:

1. read the registry (rates, limits) — ``reference.load_reference``;
2. check each event against it (known pair, the side that owns the fact, canonical amount in the exporter's
   currency) — refusals are counted;
3. create and lock (``SELECT … FOR UPDATE``, in key order) the balance rows of the pairs the batch touches, so
   concurrent batches of one pair (two nodes, two CP replicas) serialize and see each other's orders;
4. drop events already stored (dedupe by ``event_id``) and second confirmations of an order; an id or an order's
   confirmation re-sent with a different content is a conflict;
5. apply the accounting rules (``ledger``) event by event, and after every balance change the threshold machine
   (``thresholds``): alerts and signals carry the correlation id and receipt time of the event that crossed;
6. write events (``INSERT … ON CONFLICT DO NOTHING RETURNING``), orders, balances, trend points, counters with
   executemany.

Signals issued are returned for publication after commit.

Trust refusals are fatal to the whole batch: an event from the side that does not own its fact
(``EVENT_NOT_OWNED``), an amount that is not canonical (``AMOUNT_NOT_CANONICAL``) or quantity (``BAD_QUANTITY``),
an event id or order confirmation re-sent with a different content (``EVENT_CONFLICT``). The batch's transaction is
rolled back (nothing counted), the refusal is counted (and a conflict stored as a SECURITY discrepancy) in a
transaction of its own, and the call fails with the precise status; ``ErrorInfo.metadata`` names the event's
``index`` and ``event_id`` so the node can set that one event aside and resend the rest.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.risk.signal_store import AUTOMATIC, DISABLE, ENABLE, OPERATOR, Auditor, SignalRecord, SignalStore
from cp_server.settings.risk import RiskSettings
from xporty.cp.v1 import telemetry_pb2
from xwl_runtime.errors import Aborted, AlreadyExists, InvalidArgument, NotFound, PermissionDenied, XcwlError
from xwl_runtime.money import MoneyError, parse_canonical_amount

from . import tables as t
from .ledger import (
    EXPORTER,
    KIND_OF,
    ORDER_KINDS,
    OWNER,
    ZERO,
    Balance,
    EventKind,
    OrderState,
    PairDelta,
    apply,
    dec_str,
    grace_event_id,
    pair_of,
    reference_value,
)
from .plan import CompensationPlanner
from .reference import Reference, load_reference
from .sql import DuplicateKey, WriteGate, add_counts, fast_insert, in_values, insert_ignore, select_in
from .thresholds import Action, ActionKind, Level, PairLevel, compensation_required, evaluate, utilisation

CP_ACTOR = "spiffe://xporty/cp"


class RollupSink(Protocol):
    """Where a batch's pair deltas go (``cp_server.rollups.writer.RollupWriter``, given by ``risk_services``)."""

    async def write(
        self, conn: AsyncConnection, deltas: Iterable[tuple[str, str, PairDelta]], at: dt.datetime
    ) -> None: ...


@dataclass(frozen=True)
class Candidate:
    """An event whose signature and shape were verified, with its position in the request."""

    index: int
    event: telemetry_pb2.LedgerEvent
    signed: telemetry_pb2.SignedEvent


@dataclass(frozen=True)
class Refusal:
    """An event the CP refused, and why (machine-readable reason)."""

    index: int
    event_id: str
    reason: str


FATAL: dict[str, type[XcwlError]] = {"EVENT_NOT_OWNED": PermissionDenied, "AMOUNT_NOT_CANONICAL": InvalidArgument,
         "BAD_QUANTITY": InvalidArgument, "EVENT_CONFLICT": AlreadyExists}
"""Refusal reasons that fail the whole batch, with the error each becomes."""
MAX_QUANTITY = 10**12
SECURITY = "SECURITY"


class BatchRefused(Exception):
    """A trust refusal inside the ingest transaction (rolls it back); carries what to record afterwards."""

    def __init__(self, refusal: Refusal, message: str, discrepancy: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message
        self.discrepancy = discrepancy

    def error(self) -> XcwlError:
        """The status the caller gets."""
        return FATAL[self.refusal.reason](self.message, reason=self.refusal.reason, metadata={
            "index": str(self.refusal.index), "event_id": self.refusal.event_id[:64]})


@dataclass(frozen=True)
class Checked:
    """An event that passed the registry checks, with what the ledger needs from it."""

    candidate: Candidate
    value: Decimal | None
    amount: Decimal | None


@dataclass
class IngestResult:
    """What a batch did."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Refusal] = field(default_factory=list)
    signals: list[SignalRecord] = field(default_factory=list)


@dataclass
class _Order:
    row: dict[str, Any]
    state: OrderState
    new: bool
    dirty: bool = False


@dataclass
class _Pair:
    wl_a: str
    wl_b: str
    balance: Balance
    level: PairLevel
    open_alert_id: str | None
    event_count: int
    limit: Decimal
    """The pair's limit in the registry now."""
    limit_used: Decimal
    """The limit its thresholds were last evaluated against (stored): a pair whose limit changed since is
    re-evaluated by the next transaction that locks it (or the reconciler's pass), even if its balance does not
    move."""
    moved: bool = False
    rollup: PairDelta = field(default_factory=PairDelta)
    """What this batch adds to the pair's hourly and monthly rollups."""


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _time(ts: Any) -> dt.datetime | None:
    # Timestamp → aware UTC datetime (microsecond precision, as ToDatetime) without its per-call overhead.
    seconds, nanos = ts.seconds, ts.nanos
    if not seconds and not nanos:
        return None
    return _EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


def _order_state(r: Any) -> OrderState:
    """An order's state from its ``risk_orders`` row mapping."""
    return OrderState(
        order_id=r["order_id"], exporter_wl=r["exporter_wl"], importer_wl=r["importer_wl"],
        export_event_id=r["export_event_id"],
        export_value=Decimal(r["export_value"]) if r["export_value"] is not None else None,
        finalize_event_id=r["finalize_event_id"], cancelled=r["cancelled_at"] is not None,
        export_amount=Decimal(r["export_amount"]) if r["export_amount"] is not None else None,
        export_quantity=int(r["export_quantity"] or 0),
        import_amount=Decimal(r["import_amount"]) if r["import_amount"] is not None else None,
        import_quantity=int(r["import_quantity"] or 0),
        compensated=r["compensated_at"] is not None, settled=r["settled_at"] is not None,
    )


class RiskEngine:
    """Applies batches of verified events; also the pair-level side of operator signals."""

    def __init__(
        self,
        engine: AsyncEngine,
        signals: SignalStore,
        audit: Auditor,
        settings: RiskSettings,
        *,
        rollups: RollupSink | None,
    ) -> None:
        self._engine = engine
        self.gate = WriteGate(engine)
        """Every risk write transaction goes through this gate (serialized in-process on SQLite)."""
        self._signals = signals
        self._audit = audit
        self._settings = settings
        self.planner = CompensationPlanner(settings)
        """Fills a DISABLE's plan with the reverse direction's offers (``plan``)."""
        self.rollups = rollups
        """Keeps the hourly and monthly rollups in the batch's transaction (None: not kept, for benchmarks)."""

    async def ingest(
        self, caller_wl: str, candidates: list[Candidate], refused: list[Refusal], *, received_at: dt.datetime
    ) -> IngestResult:
        """Store a batch in one transaction; ``refused`` (signature/shape failures) are counted with the rest."""
        result = IngestResult(rejected=list(refused))
        try:
            async with self.gate.begin() as conn:
                await self._ingest(conn, caller_wl, candidates, result, received_at)
                await self._count(conn, caller_wl, result)
        except BatchRefused as refusal:
            await self._record_refusal(caller_wl, refusal, received_at)
            raise refusal.error() from None
        result.rejected.sort(key=lambda r: r.index)
        return result

    async def _record_refusal(self, caller_wl: str, refusal: BatchRefused, now: dt.datetime) -> None:
        """Count a batch-fatal refusal and store a conflict as a SECURITY discrepancy (its own transaction: the
        batch's was rolled back)."""
        reason = refusal.refusal.reason
        async with self.gate.begin() as conn:
            await add_counts(conn, t.ingest_counters, ["wl_id", "reason"],
                             [{"wl_id": caller_wl, "reason": reason, "count": 1}])
            d = refusal.discrepancy
            if d is None:
                return
            inserted = await conn.execute(insert_ignore(conn, t.discrepancies, ["order_id", "reason"]).values(
                category=SECURITY, reason=reason, detect_time=now, resolved_at=None, reporter_wl=caller_wl, **d))
            if inserted.rowcount:
                await self._audit.append(
                    conn, actor=CP_ACTOR, action="risk.discrepancy", subject=f"order/{d['order_id']}", before=None,
                    after={"reason": reason, "category": SECURITY, "event_id": d["event_id"],
                           "reporter_wl": caller_wl}, correlation_id=d["correlation_id"])

    async def _count(self, conn: AsyncConnection, caller_wl: str, result: IngestResult) -> None:
        """Add the batch's outcome to the ingest counters (same transaction)."""
        counts: dict[str, int] = {}
        for r in result.rejected:
            counts[r.reason] = counts.get(r.reason, 0) + 1
        if result.accepted:
            counts["ACCEPTED"] = result.accepted
        if result.duplicates:
            counts["DUPLICATE"] = result.duplicates
        await add_counts(conn, t.ingest_counters, ["wl_id", "reason"],
                         [{"wl_id": caller_wl, "reason": k, "count": v} for k, v in sorted(counts.items())])

    # --- validation against the registry ------------------------------------------------------------------

    def _check(self, c: Candidate, ref: Reference) -> tuple[str | None, Decimal | None, Decimal | None]:
        """(refusal reason or None, reference value of an EXPORT_CONFIRMED, the canonical amount if any)."""
        e = c.event
        kind = KIND_OF[e.kind]
        if kind not in ORDER_KINDS:
            return None, None, None
        if e.exporter_wl == e.importer_wl or pair_of(e.exporter_wl, e.importer_wl) not in ref.pairs:
            return "UNKNOWN_PAIR", None, None
        if e.wl_id not in (e.exporter_wl, e.importer_wl):
            return "NOT_A_PARTY", None, None
        if e.wl_id != (e.exporter_wl if OWNER[kind] == EXPORTER else e.importer_wl):
            return "EVENT_NOT_OWNED", None, None
        sale = kind is EventKind.EXPORT_CONFIRMED or kind is EventKind.IMPORT_FINALIZED
        if not sale and not e.amount.amount and not e.amount.currency:
            return None, None, None  # a cancellation need not restate the amount
        exporter = ref.wls.get(e.exporter_wl)
        if exporter is None or e.amount.currency != exporter.currency:
            return "CURRENCY_MISMATCH", None, None
        try:
            amount = parse_canonical_amount(e.amount.amount, exporter.decimals)
        except MoneyError:
            return "AMOUNT_NOT_CANONICAL", None, None
        if sale and not 1 <= e.quantity <= MAX_QUANTITY:
            return "BAD_QUANTITY", None, None
        value = reference_value(amount, exporter.reference_rate) if kind is EventKind.EXPORT_CONFIRMED else None
        return None, value, amount

    @staticmethod
    def _fatal(c: Candidate, reason: str) -> BatchRefused:
        e = c.event
        kind = KIND_OF[e.kind].name
        messages = {
            "EVENT_NOT_OWNED": f"{kind} is reported by the {OWNER.get(KIND_OF[e.kind], EXPORTER)} of the order only",
            "AMOUNT_NOT_CANONICAL": "amount must be a plain decimal > 0 with at most the exporter currency's decimals",
            "BAD_QUANTITY": f"quantity must be 1..{MAX_QUANTITY}",
        }
        return BatchRefused(Refusal(c.index, e.event_id, reason), messages[reason])

    @staticmethod
    def _conflict(c: Candidate, what: str) -> BatchRefused:
        e = c.event
        return BatchRefused(
            Refusal(c.index, e.event_id, "EVENT_CONFLICT"), f"{what} was already reported with a different content",
            discrepancy={"order_id": (e.order_id or e.event_id)[:128], "event_id": e.event_id,
                         "exporter_wl": e.exporter_wl, "importer_wl": e.importer_wl,
                         "correlation_id": e.correlation_id})

    # --- the transaction ----------------------------------------------------------------------------------

    async def _ingest(
        self, conn: AsyncConnection, caller_wl: str, candidates: list[Candidate], result: IngestResult,
        now: dt.datetime,
    ) -> None:
        if not candidates:
            return
        keys = {pair_of(c.event.exporter_wl, c.event.importer_wl) for c in candidates
                if KIND_OF[c.event.kind] in ORDER_KINDS}
        ref = await load_reference(conn, keys)
        valid: list[Checked] = []
        for c in candidates:
            reason, value, amount = self._check(c, ref)
            if reason in FATAL:
                raise self._fatal(c, reason)
            if reason:
                result.rejected.append(Refusal(c.index, c.event.event_id, reason))
            else:
                valid.append(Checked(c, value, amount))
        pairs = await self._lock_pairs(conn, ref, {
            pair_of(v.candidate.event.exporter_wl, v.candidate.event.importer_wl) for v in valid
            if KIND_OF[v.candidate.event.kind] in ORDER_KINDS}, now)
        ids = [v.candidate.event.event_id for v in valid]
        stored = {r[0]: bytes(r[1]) for r in await select_in(conn, t.events, "event_id", ids, ["event_id", "payload"])}
        orders = await self._load_orders(conn, {v.candidate.event.order_id for v in valid
                                                if v.candidate.event.order_id})

        rows: list[dict[str, Any]] = []
        acks: list[telemetry_pb2.LedgerEvent] = []
        seen: dict[str, bytes] = {}
        for checked in valid:
            c, value = checked.candidate, checked.value
            e = c.event
            known = stored.get(e.event_id, seen.get(e.event_id))
            if known is not None:
                if known != c.signed.payload:  # same id, another meaning: never a duplicate
                    raise self._conflict(c, f"event {e.event_id[:64]}")
                result.duplicates += 1
                continue
            kind = KIND_OF[e.kind]
            if kind is EventKind.ENFORCEMENT_ACK:
                seen[e.event_id] = c.signed.payload
                rows.append(self._row(c, kind, "", "", None, now))
                acks.append(e)
                continue
            a, b = pair_of(e.exporter_wl, e.importer_wl)
            order = orders.get(e.order_id)
            if order is None:
                order = orders[e.order_id] = self._new_order(e, a, b, now)
            elif (order.state.exporter_wl, order.state.importer_wl) != (e.exporter_wl, e.importer_wl):
                result.rejected.append(Refusal(c.index, e.event_id, "ORDER_MISMATCH"))
                continue
            applied = apply(order.state, kind, e.event_id, value, checked.amount, e.quantity)
            if applied.duplicate:
                if not self._same_sale(order.state, kind, checked.amount, e.quantity):
                    raise self._conflict(c, f"{kind.name} of order {e.order_id[:64]}")
                result.duplicates += 1
                continue
            seen[e.event_id] = c.signed.payload
            self._touch(order, applied.state, kind, e.event_id, value, now)
            rows.append(self._row(c, kind, a, b, value, now))
            pair = pairs[(a, b)]
            pair.event_count += 1
            pair.rollup.events += 1
            if applied.delta != ZERO:
                pair.rollup.moved(e.exporter_wl == a, applied.delta, applied.state.export_amount)
                pair.balance = pair.balance.moved(a, e.exporter_wl, applied.delta)
                pair.moved = True
                await self._thresholds(conn, pair, e.correlation_id, e.event_id, now, result)

        if rows:
            try:
                result.accepted += await fast_insert(conn, t.events, rows)
            except DuplicateKey as err:
                # Another transaction stored one of these ids between our read and write (PostgreSQL only: on
                # SQLite writers are serialized): roll back, the node retries and gets exact duplicates.
                raise Aborted("a concurrent batch stored the same event id; retry",
                              reason="CONCURRENT_DUPLICATE") from err
        await self._write_orders(conn, orders, now)
        await self._limits_changed(conn, pairs, now, result)
        await self._write_pairs(conn, pairs, now)
        for e in acks:
            await self._record_ack(conn, e, now)

    async def _lock_pairs(
        self, conn: AsyncConnection, ref: Reference, keys: set[tuple[str, str]], now: dt.datetime
    ) -> dict[tuple[str, str], _Pair]:
        if not keys:
            return {}
        await conn.execute(insert_ignore(conn, t.balances, ["wl_a", "wl_b"]), [
            {"wl_a": a, "wl_b": b, "exports_ab": "0", "exports_ba": "0", "level": Level.OK.name,
             "limit_used": dec_str(ref.pairs[(a, b)].limit), "open_alert_id": None, "disabled_exporter": None,
             "event_count": 0, "updated_at": now}
            for a, b in sorted(keys)
        ])
        bal = t.balances
        rows = (await conn.execute(
            sa.select(bal).where(sa.tuple_(bal.c.wl_a, bal.c.wl_b).in_(sorted(keys)))
            .order_by(bal.c.wl_a, bal.c.wl_b).with_for_update()
        )).all()
        return {
            (r.wl_a, r.wl_b): _Pair(
                r.wl_a, r.wl_b, Balance(Decimal(r.exports_ab), Decimal(r.exports_ba)),
                PairLevel(Level[r.level], r.disabled_exporter), r.open_alert_id, int(r.event_count),
                ref.pairs[(r.wl_a, r.wl_b)].limit, Decimal(r.limit_used),
            )
            for r in rows
        }

    async def _load_orders(self, conn: AsyncConnection, order_ids: set[str]) -> dict[str, _Order]:
        if not order_ids:
            return {}
        o = t.orders
        query = sa.select(o).where(in_values(conn, o.c.order_id, sorted(order_ids)))
        rows = (await conn.execute(query)).mappings().all()
        return {r["order_id"]: _Order(dict(r), _order_state(r), new=False) for r in rows}

    @staticmethod
    def _same_sale(state: OrderState, kind: EventKind, amount: Decimal | None, quantity: int) -> bool:
        """A second confirmation (or finalization) of an order says what the first said."""
        if kind is EventKind.EXPORT_CONFIRMED:
            return (state.export_amount, state.export_quantity) == (amount, quantity)
        if kind is EventKind.IMPORT_FINALIZED:
            return (state.import_amount, state.import_quantity) == (amount, quantity)
        return True

    @staticmethod
    def _new_order(e: telemetry_pb2.LedgerEvent, a: str, b: str, now: dt.datetime) -> _Order:
        row = {"order_id": e.order_id, "exporter_wl": e.exporter_wl, "importer_wl": e.importer_wl, "wl_a": a,
               "wl_b": b, "correlation_id": e.correlation_id, "first_seen_at": now, "export_event_id": None,
               "export_value": None, "confirmed_at": None, "finalize_event_id": None, "finalized_at": None,
               "cancelled_at": None, "export_amount": None, "export_quantity": None, "import_amount": None,
               "import_quantity": None, "compensated_at": None, "settled_at": None, "counted": False,
               "agreement": None}
        return _Order(row, OrderState(e.order_id, e.exporter_wl, e.importer_wl), new=True)

    @staticmethod
    def _touch(
        order: _Order, state: OrderState, kind: EventKind, event_id: str, value: Decimal | None, now: dt.datetime
    ) -> None:
        order.state = state
        order.dirty = True
        row = order.row
        if kind is EventKind.EXPORT_CONFIRMED:
            row.update(export_event_id=event_id, export_value=dec_str(value or ZERO), confirmed_at=now,
                       export_amount=dec_str(state.export_amount or ZERO), export_quantity=state.export_quantity)
        elif kind is EventKind.IMPORT_FINALIZED:
            row.update(finalize_event_id=event_id, finalized_at=now,
                       import_amount=dec_str(state.import_amount or ZERO), import_quantity=state.import_quantity)
        elif kind is EventKind.ORDER_CANCELLED:
            if row["cancelled_at"] is None:
                row["cancelled_at"] = now
        elif kind is EventKind.COMPENSATION:
            if row["compensated_at"] is None:
                row["compensated_at"] = now
        elif kind is EventKind.GRACE_EXPIRED:
            row["settled_at"] = now
        row["counted"] = state.contribution != ZERO
        row["agreement"] = state.agreement

    @staticmethod
    def _row(
        c: Candidate, kind: EventKind, a: str, b: str, value: Decimal | None, now: dt.datetime
    ) -> dict[str, Any]:
        e = c.event
        return {
            "event_id": e.event_id, "wl_id": e.wl_id, "kind": kind.name, "order_id": e.order_id,
            "exporter_wl": e.exporter_wl, "importer_wl": e.importer_wl, "wl_a": a, "wl_b": b,
            "currency": e.amount.currency, "amount": e.amount.amount,
            "reference_value": dec_str(value) if value is not None else "", "correlation_id": e.correlation_id,
            "occur_time": _time(e.occur_time), "node_sequence": e.sequence, "signal_id": e.signal_id,
            "received_at": now, "signer_sha256": c.signed.signer_certificate_sha256, "payload": c.signed.payload,
            "signature": c.signed.signature, "quantity": e.quantity,
        }

    async def _write_orders(self, conn: AsyncConnection, orders: dict[str, _Order], now: dt.datetime) -> None:
        new = [o.row for o in orders.values() if o.new and o.dirty]
        changed = [o.row for o in orders.values() if not o.new and o.dirty]
        if new:
            await fast_insert(conn, t.orders, new)
        if changed:
            o = t.orders
            cols = ("export_event_id", "export_value", "confirmed_at", "finalize_event_id", "finalized_at",
                    "cancelled_at", "export_amount", "export_quantity", "import_amount", "import_quantity",
                    "compensated_at", "settled_at", "counted", "agreement")
            await conn.execute(
                o.update().where(o.c.order_id == sa.bindparam("b_order_id"))
                .values({c: sa.bindparam(f"b_{c}") for c in cols}),
                [{"b_order_id": r["order_id"], **{f"b_{c}": r[c] for c in cols}} for r in changed],
            )
            await self._resolve(conn, changed, now)

    @staticmethod
    async def _resolve(conn: AsyncConnection, changed: list[dict[str, Any]], now: dt.datetime) -> None:
        """Resolve the discrepancies the batch's events answered: a missing side that arrived (or a
        cancellation), a one-sided cancellation the other side joined. Mismatches and conflicts stay."""
        d = t.discrepancies
        missing = [r["order_id"] for r in changed
                   if r["cancelled_at"] is not None or r["compensated_at"] is not None
                   or (r["confirmed_at"] and r["finalized_at"])]
        both = [r["order_id"] for r in changed if r["cancelled_at"] is not None and r["compensated_at"] is not None]
        alerts: list[str] = []
        for ids, reasons in ((missing, ("IMPORT_NOT_FINALIZED", "EXPORT_NOT_CONFIRMED")),
                             (both, ("ONE_SIDED_CANCELLATION",))):
            if ids:
                resolved = await conn.execute(
                    d.update().where(d.c.order_id.in_(ids), d.c.reason.in_(reasons), d.c.resolved_at.is_(None))
                    .values(resolved_at=now).returning(d.c.alert_id))
                alerts += [a for a in resolved.scalars() if a]
        if alerts:  # rare: the alerts of the discrepancies just resolved close with them
            a = t.alerts
            await conn.execute(a.update().where(a.c.alert_id.in_(alerts)).values(open=False, close_time=now))

    async def _write_pairs(self, conn: AsyncConnection, pairs: dict[tuple[str, str], _Pair], now: dt.datetime) -> None:
        if not pairs:
            return
        bal = t.balances
        await conn.execute(
            bal.update().where(bal.c.wl_a == sa.bindparam("b_a"), bal.c.wl_b == sa.bindparam("b_b")).values(
                exports_ab=sa.bindparam("b_ab"), exports_ba=sa.bindparam("b_ba"), level=sa.bindparam("b_level"),
                limit_used=sa.bindparam("b_limit"), open_alert_id=sa.bindparam("b_alert"),
                disabled_exporter=sa.bindparam("b_dis"), event_count=sa.bindparam("b_count"), updated_at=now,
            ),
            [{"b_a": p.wl_a, "b_b": p.wl_b, "b_ab": dec_str(p.balance.exports_ab),
              "b_ba": dec_str(p.balance.exports_ba), "b_level": p.level.level.name, "b_limit": dec_str(p.limit_used),
              "b_alert": p.open_alert_id, "b_dis": p.level.disabled_exporter, "b_count": p.event_count}
             for p in pairs.values()],
        )
        points = [{"wl_a": p.wl_a, "wl_b": p.wl_b, "at": now, "net": dec_str(p.balance.net)}
                  for p in pairs.values() if p.moved]
        if points:
            await conn.execute(t.balance_points.insert(), points)
        if self.rollups is not None:
            await self.rollups.write(conn, ((p.wl_a, p.wl_b, p.rollup) for p in pairs.values()), now)

    async def _record_ack(self, conn: AsyncConnection, e: telemetry_pb2.LedgerEvent, now: dt.datetime) -> None:
        signal = await self._signals.get(conn, e.signal_id)
        if signal is None or not signal.concerns(e.wl_id):
            return
        await self._signals.record_ack(conn, signal_id=e.signal_id, wl_id=e.wl_id,
                                       effective_time=_time(e.occur_time) or now, received_at=now, via="event")

    # --- thresholds -----------------------------------------------------------------------------------------

    async def _thresholds(
        self, conn: AsyncConnection, pair: _Pair, cid: str, event_id: str | None, now: dt.datetime,
        result: IngestResult,
    ) -> None:
        net = pair.balance.net
        pair.limit_used = pair.limit
        new_level, actions = evaluate(
            pair.level, wl_a=pair.wl_a, wl_b=pair.wl_b, net=net, limit=pair.limit, settings=self._settings)
        pair.level = new_level
        for action in actions:
            await self._act(conn, pair, action, net, cid, event_id, now, result)

    async def _limits_changed(
        self, conn: AsyncConnection, pairs: dict[tuple[str, str], _Pair], now: dt.datetime, result: IngestResult,
    ) -> None:
        """Evaluate the thresholds of the locked pairs whose limit changed since their last evaluation and that the
        batch did not evaluate (their balance did not move): the new limit takes effect now, not at the next
        balance move."""
        for pair in pairs.values():
            if pair.limit_used != pair.limit:
                await self._thresholds(conn, pair, f"limit-{uuid.uuid4().hex}", None, now, result)

    async def _act(
        self, conn: AsyncConnection, pair: _Pair, action: Action, net: Decimal, cid: str, event_id: str | None,
        now: dt.datetime, result: IngestResult,
    ) -> None:
        u = utilisation(net, pair.limit)
        subject = f"pair/{pair.wl_a}/{pair.wl_b}"
        a = t.alerts
        if action.kind is ActionKind.RAISE_ALERT:
            pair.open_alert_id = uuid.uuid4().hex
            await conn.execute(a.insert().values(
                alert_id=pair.open_alert_id, wl_a=pair.wl_a, wl_b=pair.wl_b, level=Level.ALERT.name,
                utilisation=dec_str(u), correlation_id=cid, event_id=event_id or "", raise_time=now, open=True))
            await self._audit.append(conn, actor=CP_ACTOR, action="risk.alert.raise", subject=subject,
                                     before=None, after={"alert_id": pair.open_alert_id, "utilisation": dec_str(u),
                                                         "net_delta": dec_str(net), "limit": dec_str(pair.limit)},
                                     correlation_id=cid)
            result.signals.append(await self._signals.issue_alert(
                conn, wl_a=pair.wl_a, wl_b=pair.wl_b, raised=True, correlation_id=cid, now=now, actor=CP_ACTOR,
                reason=f"imbalance utilisation {dec_str(u)} at or above {dec_str(self._settings.alert_threshold)}",
                trigger_event_id=event_id))
        elif action.kind is ActionKind.ESCALATE_ALERT and pair.open_alert_id:
            await conn.execute(a.update().where(a.c.alert_id == pair.open_alert_id).values(level=Level.DISABLED.name))
        elif action.kind is ActionKind.CLOSE_ALERT and pair.open_alert_id:
            await conn.execute(a.update().where(a.c.alert_id == pair.open_alert_id).values(open=False, close_time=now))
            await self._audit.append(conn, actor=CP_ACTOR, action="risk.alert.close", subject=subject,
                                     before={"alert_id": pair.open_alert_id}, after={"utilisation": dec_str(u)},
                                     correlation_id=cid)
            pair.open_alert_id = None
            result.signals.append(await self._signals.issue_alert(
                conn, wl_a=pair.wl_a, wl_b=pair.wl_b, raised=False, correlation_id=cid, now=now, actor=CP_ACTOR,
                reason=f"imbalance utilisation {dec_str(u)} back under the alert level"))
        elif action.kind in (ActionKind.DISABLE, ActionKind.ENABLE):
            exporter = action.exporter_wl
            importer = pair.wl_b if exporter == pair.wl_a else pair.wl_a
            current = await self._signals.direction(conn, exporter, importer)
            disabled_now = current is not None and current.disabled
            if action.kind is ActionKind.DISABLE and disabled_now:
                return  # already disabled (e.g. by an operator): nothing new to tell the nodes
            if action.kind is ActionKind.ENABLE and not (disabled_now and current and current.source == AUTOMATIC):
                return  # never lift an operator's disable automatically
            disable = action.kind is ActionKind.DISABLE
            required = compensation_required(net, pair.limit, self._settings) if disable else None
            record = await self._signals.issue(
                conn, kind=DISABLE if disable else ENABLE, source=AUTOMATIC, exporter_wl=exporter,
                importer_wl=importer, correlation_id=cid, now=now, actor=CP_ACTOR,
                reason=(f"imbalance utilisation {dec_str(u)} above {dec_str(self._settings.disable_threshold)}"
                        if disable else
                        f"imbalance utilisation {dec_str(u)} below {dec_str(self._settings.reenable_threshold)}"),
                plan_required=required,
                plan_offers=() if required is None else await self.planner.offers(
                    conn, exporter_wl=importer, importer_wl=exporter, required=required, now=now),
                trigger_event_id=event_id, trigger_received_at=now if event_id else None,
            )
            result.signals.append(record)


    # --- the grace period -----------------------------------------------------------------------------------

    async def settle_expired(self, now: dt.datetime, cutoff: dt.datetime, limit: int = 1000) -> list[SignalRecord]:
        """Count the exporter's side of every confirmed, uncancelled order the two sides did not agree on by
        ``cutoff`` (importer silent, disagreeing or compensated alone): one CP ``GRACE_EXPIRED`` event per order,
        in one transaction with the balances and thresholds. Returns the signals issued."""
        o = t.orders
        async with self._engine.connect() as conn:
            due = (await conn.execute(
                sa.select(o.c.order_id, o.c.wl_a, o.c.wl_b).where(
                    o.c.counted == sa.false(), o.c.settled_at.is_(None), o.c.confirmed_at <= cutoff,
                    o.c.export_event_id.is_not(None), o.c.cancelled_at.is_(None))
                .order_by(o.c.confirmed_at).limit(limit))).all()
        if not due:
            return []
        result = IngestResult()
        async with self.gate.begin() as conn:
            keys = {(r.wl_a, r.wl_b) for r in due}
            ref = await load_reference(conn, keys)
            pairs = await self._lock_pairs(conn, ref, keys & ref.pairs.keys(), now)
            orders = await self._load_orders(conn, {r.order_id for r in due})  # re-read under the pair locks
            rows: list[dict[str, Any]] = []
            for order in orders.values():
                st = order.state
                pair = pairs.get((order.row["wl_a"], order.row["wl_b"]))
                if pair is None or st.settled or st.cancelled or st.export_event_id is None or st.contribution:
                    continue  # settled by another replica, or it changed since the scan
                applied = apply(st, EventKind.GRACE_EXPIRED, grace_event_id(st.order_id), None)
                self._touch(order, applied.state, EventKind.GRACE_EXPIRED, "", None, now)
                rows.append(self._marker(order, now))
                pair.event_count += 1
                pair.rollup.events += 1
                if applied.delta != ZERO:
                    pair.rollup.moved(st.exporter_wl == pair.wl_a, applied.delta, applied.state.export_amount)
                    pair.balance = pair.balance.moved(pair.wl_a, st.exporter_wl, applied.delta)
                    pair.moved = True
                    await self._thresholds(conn, pair, order.row["correlation_id"], rows[-1]["event_id"], now,
                                           result)
            if rows:
                await fast_insert(conn, t.events, rows)
            await self._write_orders(conn, orders, now)
            await self._limits_changed(conn, pairs, now, result)
            await self._write_pairs(conn, pairs, now)
        return result.signals

    @staticmethod
    def _marker(order: _Order, now: dt.datetime) -> dict[str, Any]:
        """The stored GRACE_EXPIRED event of an order (written by the CP: no payload, no signature)."""
        r = order.row
        return {
            "event_id": grace_event_id(r["order_id"]), "wl_id": "", "kind": EventKind.GRACE_EXPIRED.name,
            "order_id": r["order_id"], "exporter_wl": r["exporter_wl"], "importer_wl": r["importer_wl"],
            "wl_a": r["wl_a"], "wl_b": r["wl_b"], "currency": "", "amount": "", "reference_value": "",
            "correlation_id": r["correlation_id"], "occur_time": now, "node_sequence": 0, "signal_id": "",
            "received_at": now, "signer_sha256": "", "payload": b"", "signature": b"", "quantity": 0,
        }

    # --- operator signals -------------------------------------------------------------------------------------

    async def operator_signal(
        self, *, kind: str, exporter_wl: str, importer_wl: str, reason: str, actor: str, correlation_id: str,
        now: dt.datetime,
    ) -> SignalRecord:
        """Store an operator's DISABLE/ENABLE of a direction (under the pair's lock) and return it.

        An operator ENABLE of a direction the CP disabled automatically ends that disable: the pair drops back to
        ALERT (its alert stays open) and the next event that keeps it above the limit disables it again. Raising
        the pair's limit is the way to let trade continue.
        """
        a, b = pair_of(exporter_wl, importer_wl)
        async with self.gate.begin() as conn:
            ref = await load_reference(conn, {(a, b)})
            if (a, b) not in ref.pairs:
                raise NotFound(f"no pair {a}/{b}", reason="UNKNOWN_PAIR", metadata={"wl_a": a, "wl_b": b})
            pair = (await self._lock_pairs(conn, ref, {(a, b)}, now))[(a, b)]
            record = await self._signals.issue(
                conn, kind=kind, source=OPERATOR, exporter_wl=exporter_wl, importer_wl=importer_wl, reason=reason,
                correlation_id=correlation_id, now=now, actor=actor)
            if kind == ENABLE and pair.level.disabled_exporter == exporter_wl:
                pair.level = PairLevel(Level.ALERT, None)
                await self._write_pairs(conn, {(a, b): pair}, now)
        return record

    # --- limit changes --------------------------------------------------------------------------------------

    async def reevaluate_limits(self, now: dt.datetime) -> list[SignalRecord]:
        """Re-run the thresholds of every pair whose limit changed since its last evaluation (policy changes do
        not go through the ingest path). Returns the signals issued."""
        result = IngestResult()
        async with self.gate.begin() as conn:
            ref = await load_reference(conn)
            bal = t.balances
            rows = (await conn.execute(sa.select(bal.c.wl_a, bal.c.wl_b, bal.c.limit_used))).all()
            stale = {
                (r.wl_a, r.wl_b) for r in rows
                if (r.wl_a, r.wl_b) in ref.pairs and Decimal(r.limit_used) != ref.pairs[(r.wl_a, r.wl_b)].limit
            }
            if not stale:
                return []
            pairs = await self._lock_pairs(conn, ref, stale, now)
            await self._limits_changed(conn, pairs, now, result)
            await self._write_pairs(conn, pairs, now)
        return result.signals
