"""The ingest transaction: store verified events, move balances, evaluate thresholds, issue signals — atomically.

One transaction per PublishEvents batch:

1. read the registry (rates, limits) — ``reference.load_reference``;
2. check each event against it (known pair, emitter's role, amount and currency) — refusals are counted;
3. create and lock (``SELECT … FOR UPDATE``, in key order) the balance rows of the pairs the batch touches, so
   concurrent batches of one pair (two nodes, two CP replicas) serialize and see each other's orders;
4. drop events already stored (dedupe by ``event_id``) and second confirmations of an order;
5. apply the accounting rules (``ledger``) event by event, and after every balance change the threshold machine
   (``thresholds``): alerts and signals carry the correlation id and receipt time of the event that crossed;
6. write events (``INSERT … ON CONFLICT DO NOTHING RETURNING``), orders, balances, trend points, counters with
   executemany.

Signals issued are returned for publication after commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.signals.store import AUTOMATIC, DISABLE, ENABLE, OPERATOR, Auditor, SignalRecord, SignalStore
from xporty.cp.v1 import telemetry_pb2
from xwl_runtime.errors import Aborted, NotFound

from . import tables as t
from .ledger import KIND_OF, ORDER_KINDS, ZERO, Balance, EventKind, OrderState, apply, dec_str, pair_of, reference_value
from .plan import CompensationPlanner
from .reference import Reference, load_reference
from .settings import RiskSettings
from .sql import DuplicateKey, WriteGate, add_counts, fast_insert, in_values, insert_ignore, select_in
from .thresholds import Action, ActionKind, Level, PairLevel, compensation_required, evaluate, utilisation

CP_ACTOR = "spiffe://xporty/cp"


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
    moved: bool = False


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _time(ts: Any) -> dt.datetime | None:
    # Timestamp → aware UTC datetime (microsecond precision, as ToDatetime) without its per-call overhead.
    seconds, nanos = ts.seconds, ts.nanos
    if not seconds and not nanos:
        return None
    return _EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


def _parse_amount(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


class RiskEngine:
    """Applies batches of verified events; also the pair-level side of operator signals."""

    def __init__(
        self,
        engine: AsyncEngine,
        signals: SignalStore,
        audit: Auditor,
        settings: RiskSettings,
    ) -> None:
        self._engine = engine
        self.gate = WriteGate(engine)
        """Every risk write transaction goes through this gate (serialized in-process on SQLite)."""
        self._signals = signals
        self._audit = audit
        self._settings = settings
        self.planner = CompensationPlanner(settings)
        """Fills a DISABLE's plan with the reverse direction's offers (``plan``)."""

    async def ingest(
        self, caller_wl: str, candidates: list[Candidate], refused: list[Refusal], *, received_at: dt.datetime
    ) -> IngestResult:
        """Store a batch in one transaction; ``refused`` (signature/shape failures) are counted with the rest."""
        result = IngestResult(rejected=list(refused))
        async with self.gate.begin() as conn:
            await self._ingest(conn, caller_wl, candidates, result, received_at)
            counts: dict[str, int] = {}
            for r in result.rejected:
                counts[r.reason] = counts.get(r.reason, 0) + 1
            if result.accepted:
                counts["ACCEPTED"] = result.accepted
            if result.duplicates:
                counts["DUPLICATE"] = result.duplicates
            await add_counts(conn, t.ingest_counters, ["wl_id", "reason"],
                             [{"wl_id": caller_wl, "reason": k, "count": v} for k, v in sorted(counts.items())])
        result.rejected.sort(key=lambda r: r.index)
        return result

    # --- validation against the registry ------------------------------------------------------------------

    def _check(self, c: Candidate, ref: Reference) -> tuple[str | None, Decimal | None]:
        """(refusal reason or None, reference value of an EXPORT_CONFIRMED)."""
        e = c.event
        kind = KIND_OF[e.kind]
        if kind not in ORDER_KINDS:
            return None, None
        if e.exporter_wl == e.importer_wl or pair_of(e.exporter_wl, e.importer_wl) not in ref.pairs:
            return "UNKNOWN_PAIR", None
        if e.wl_id not in (e.exporter_wl, e.importer_wl):
            return "NOT_A_PARTY", None
        if kind is EventKind.EXPORT_CONFIRMED and e.wl_id != e.exporter_wl:
            return "WRONG_EMITTER", None
        if kind is EventKind.IMPORT_FINALIZED and e.wl_id != e.importer_wl:
            return "WRONG_EMITTER", None
        if kind is not EventKind.EXPORT_CONFIRMED:
            if e.amount.amount and _parse_amount(e.amount.amount) is None:
                return "BAD_AMOUNT", None
            return None, None
        amount = _parse_amount(e.amount.amount)
        if amount is None or amount <= ZERO:
            return "BAD_AMOUNT", None
        exporter = ref.wls.get(e.exporter_wl)
        if exporter is None or e.amount.currency != exporter.currency:
            return "CURRENCY_MISMATCH", None
        return None, reference_value(amount, exporter.reference_rate)

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
        valid: list[tuple[Candidate, Decimal | None]] = []
        for c in candidates:
            reason, value = self._check(c, ref)
            if reason:
                result.rejected.append(Refusal(c.index, c.event.event_id, reason))
            else:
                valid.append((c, value))
        pairs = await self._lock_pairs(conn, ref, {
            pair_of(c.event.exporter_wl, c.event.importer_wl) for c, _ in valid
            if KIND_OF[c.event.kind] in ORDER_KINDS}, now)
        ids = [c.event.event_id for c, _ in valid]
        stored = {r[0] for r in await select_in(conn, t.events, "event_id", ids, ["event_id"])}
        orders = await self._load_orders(conn, {c.event.order_id for c, _ in valid if c.event.order_id})

        rows: list[dict[str, Any]] = []
        acks: list[telemetry_pb2.LedgerEvent] = []
        seen: set[str] = set()
        for c, value in valid:
            e = c.event
            if e.event_id in stored or e.event_id in seen:
                result.duplicates += 1
                continue
            kind = KIND_OF[e.kind]
            if kind is EventKind.ENFORCEMENT_ACK:
                seen.add(e.event_id)
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
            applied = apply(order.state, kind, e.event_id, value)
            if applied.duplicate:
                result.duplicates += 1
                continue
            seen.add(e.event_id)
            self._touch(order, applied.state, kind, e.event_id, value, now)
            rows.append(self._row(c, kind, a, b, value, now))
            pair = pairs[(a, b)]
            pair.event_count += 1
            if applied.delta != ZERO:
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
                ref.pairs[(r.wl_a, r.wl_b)].limit,
            )
            for r in rows
        }

    async def _load_orders(self, conn: AsyncConnection, order_ids: set[str]) -> dict[str, _Order]:
        if not order_ids:
            return {}
        o = t.orders
        query = sa.select(o).where(in_values(conn, o.c.order_id, sorted(order_ids)))
        rows = (await conn.execute(query)).mappings().all()
        out: dict[str, _Order] = {}
        for r in rows:
            state = OrderState(
                order_id=r["order_id"], exporter_wl=r["exporter_wl"], importer_wl=r["importer_wl"],
                export_event_id=r["export_event_id"],
                export_value=Decimal(r["export_value"]) if r["export_value"] is not None else None,
                finalize_event_id=r["finalize_event_id"], cancelled=r["cancelled_at"] is not None,
            )
            out[r["order_id"]] = _Order(dict(r), state, new=False)
        return out

    @staticmethod
    def _new_order(e: telemetry_pb2.LedgerEvent, a: str, b: str, now: dt.datetime) -> _Order:
        row = {"order_id": e.order_id, "exporter_wl": e.exporter_wl, "importer_wl": e.importer_wl, "wl_a": a,
               "wl_b": b, "correlation_id": e.correlation_id, "first_seen_at": now, "export_event_id": None,
               "export_value": None, "confirmed_at": None, "finalize_event_id": None, "finalized_at": None,
               "cancelled_at": None}
        return _Order(row, OrderState(e.order_id, e.exporter_wl, e.importer_wl), new=True)

    @staticmethod
    def _touch(
        order: _Order, state: OrderState, kind: EventKind, event_id: str, value: Decimal | None, now: dt.datetime
    ) -> None:
        order.state = state
        order.dirty = True
        row = order.row
        if kind is EventKind.EXPORT_CONFIRMED:
            row.update(export_event_id=event_id, export_value=dec_str(value or ZERO), confirmed_at=now)
        elif kind is EventKind.IMPORT_FINALIZED:
            row.update(finalize_event_id=event_id, finalized_at=now)
        elif row["cancelled_at"] is None:
            row["cancelled_at"] = now

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
            "signature": c.signed.signature,
        }

    async def _write_orders(self, conn: AsyncConnection, orders: dict[str, _Order], now: dt.datetime) -> None:
        new = [o.row for o in orders.values() if o.new and o.dirty]
        changed = [o.row for o in orders.values() if not o.new and o.dirty]
        if new:
            await fast_insert(conn, t.orders, new)
        if changed:
            o = t.orders
            cols = ("export_event_id", "export_value", "confirmed_at", "finalize_event_id", "finalized_at",
                    "cancelled_at")
            await conn.execute(
                o.update().where(o.c.order_id == sa.bindparam("b_order_id"))
                .values({c: sa.bindparam(f"b_{c}") for c in cols}),
                [{"b_order_id": r["order_id"], **{f"b_{c}": r[c] for c in cols}} for r in changed],
            )
            settled = [r["order_id"] for r in changed
                       if r["cancelled_at"] is not None or (r["confirmed_at"] and r["finalized_at"])]
            if settled:
                d = t.discrepancies
                await conn.execute(d.update().where(d.c.order_id.in_(settled), d.c.resolved_at.is_(None))
                                   .values(resolved_at=now))

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
              "b_ba": dec_str(p.balance.exports_ba), "b_level": p.level.level.name, "b_limit": dec_str(p.limit),
              "b_alert": p.open_alert_id, "b_dis": p.level.disabled_exporter, "b_count": p.event_count}
             for p in pairs.values()],
        )
        points = [{"wl_a": p.wl_a, "wl_b": p.wl_b, "at": now, "net": dec_str(p.balance.net)}
                  for p in pairs.values() if p.moved]
        if points:
            await conn.execute(t.balance_points.insert(), points)

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
        new_level, actions = evaluate(
            pair.level, wl_a=pair.wl_a, wl_b=pair.wl_b, net=net, limit=pair.limit, settings=self._settings)
        pair.level = new_level
        for action in actions:
            await self._act(conn, pair, action, net, cid, event_id, now, result)

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
        elif action.kind is ActionKind.ESCALATE_ALERT and pair.open_alert_id:
            await conn.execute(a.update().where(a.c.alert_id == pair.open_alert_id).values(level=Level.DISABLED.name))
        elif action.kind is ActionKind.CLOSE_ALERT and pair.open_alert_id:
            await conn.execute(a.update().where(a.c.alert_id == pair.open_alert_id).values(open=False, close_time=now))
            await self._audit.append(conn, actor=CP_ACTOR, action="risk.alert.close", subject=subject,
                                     before={"alert_id": pair.open_alert_id}, after={"utilisation": dec_str(u)},
                                     correlation_id=cid)
            pair.open_alert_id = None
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
            for pair in pairs.values():
                await self._thresholds(conn, pair, f"limit-{uuid.uuid4().hex}", None, now, result)
            await self._write_pairs(conn, pairs, now)
        return result.signals
