"""Rollout stages per direction: configure, promote, hold, roll back (each a versioned, audited policy change).

A direction without a rollout row trades as its policy says. With one, it is at one stage:

* ``PILOT`` — the pilot cohort only (allow-list of cohort hashes, plus a share of buyers by hash), under the pilot
  maximum order value and daily value cap;
* ``EXPANSION`` — the expansion cohort and caps (typically a larger share, higher caps);
* ``GENERAL`` — everyone, no rollout caps.

Promotion goes one stage forward and is refused while the stage is held (``ROLLOUT_HELD``); only an operator
releases a hold (``HoldRollout(held=false)``). Rollback goes one stage back, held or not. Every change lands in both
WLs' views at its version, which is what the nodes enforce (so the caps hold with the CP down). Configuring a
rollout needs both WLs' nodes to have reported the ``rollout_caps`` capability, unless forced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.store import validation
from cp_server.store.changes import ChangeRunner, Committed, Tx
from cp_server.store.pairs import load_pair
from cp_server.store.records import ordered
from cp_server.store.rollout_records import STAGE_FROM_PROTO, Limits, RolloutRecord, Stage
from cp_server.store.rollout_tables import directions
from xporty.cp.v1 import rollout_service_pb2 as pb
from xwl_runtime.cohort import BASIS_POINTS, cohort_hash
from xwl_runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from xwl_runtime.text import bounded

from . import capabilities

MAX_COHORT_REFERENCES = 1000
MAX_REFERENCE_CHARS = 128
MAX_HOLD_REASON_CHARS = 500

HeldHook = Callable[[Tx, RolloutRecord, RolloutRecord], Awaitable[None]]
"""``hook(tx, before, after)`` runs in the transaction of an automatic hold (alert signal, webhook)."""


def limits_from_input(field: str, importer_wl: str, given: pb.RolloutLimitsInput) -> Limits:
    """Validate an operator's stage limits; buyer references become cohort hashes here and go no further."""
    if len(given.cohort_buyer_references) > MAX_COHORT_REFERENCES:
        raise InvalidArgument.field(f"{field}.cohort_buyer_references", f"at most {MAX_COHORT_REFERENCES}")
    hashes = []
    for i, ref in enumerate(given.cohort_buyer_references):
        name = f"{field}.cohort_buyer_references[{i}]"
        bounded(name, ref, max_chars=MAX_REFERENCE_CHARS)
        if not ref or not ref.isprintable():
            raise InvalidArgument.field(name, f"1..{MAX_REFERENCE_CHARS} printable characters")
        hashes.append(cohort_hash(importer_wl, ref))
    if given.cohort_basis_points > BASIS_POINTS:
        raise InvalidArgument.field(f"{field}.cohort_basis_points", f"0..{BASIS_POINTS}")
    cap = {}
    for name in ("max_order_value", "daily_value_cap"):
        text = getattr(given, name)
        cap[name] = validation.decimal_value(f"{field}.{name}", text, positive=True) if text else None
    return Limits(cohort_hashes=tuple(sorted(set(hashes))), cohort_bp=given.cohort_basis_points,
                  max_order_value=cap["max_order_value"], daily_value_cap=cap["daily_value_cap"])


async def _load(tx: Tx, exporter: str, importer: str) -> RolloutRecord | None:
    key = (directions.c.exporter == exporter) & (directions.c.importer == importer)
    row = (await tx.conn.execute(sa.select(directions).where(key))).mappings().first()
    return RolloutRecord.from_row(row) if row is not None else None


async def _write(tx: Tx, before: RolloutRecord | None, after: RolloutRecord, action: str, reason: str) -> None:
    key = (directions.c.exporter == after.exporter) & (directions.c.importer == after.importer)
    if before is None:
        await tx.conn.execute(directions.insert().values(after.row()))
    else:
        await tx.conn.execute(directions.update().where(key).values(after.row()))
    await tx.audit(action, f"direction/{after.exporter}->{after.importer}",
                   before.audit_state() if before is not None else None, {**after.audit_state(), "reason": reason})


class Rollouts:
    """The rollout store behind RolloutService's stage RPCs and the automatic hold."""

    def __init__(self, changes: ChangeRunner) -> None:
        self._changes = changes
        self._held_hooks: list[HeldHook] = []

    @property
    def engine(self) -> AsyncEngine:
        return self._changes.engine

    def add_held_hook(self, hook: HeldHook) -> None:
        self._held_hooks.append(hook)

    @staticmethod
    def _direction(exporter: str, importer: str) -> tuple[str, str]:
        validation.wl_id("exporter_wl", exporter)
        validation.wl_id("importer_wl", importer)
        if exporter == importer:
            raise InvalidArgument("exporter_wl and importer_wl must differ", reason="SELF_PAIR",
                                  metadata={"field": "importer_wl"})
        return exporter, importer

    async def configure(self, actor: str, request: pb.ConfigureRolloutRequest) -> Committed[RolloutRecord]:
        exporter, importer = self._direction(request.exporter_wl, request.importer_wl)
        stage = None
        if request.stage:
            stage = STAGE_FROM_PROTO.get(request.stage)
            if stage is None:
                raise InvalidArgument.field("stage", "PILOT, EXPANSION or GENERAL")
        pilot = limits_from_input("pilot", importer, request.pilot) if request.HasField("pilot") else None
        expansion = (limits_from_input("expansion", importer, request.expansion)
                     if request.HasField("expansion") else None)
        why = validation.reason("reason", request.reason)

        async def body(tx: Tx) -> RolloutRecord:
            if await load_pair(tx.conn, *ordered(exporter, importer)) is None:
                raise NotFound(f"no policy for pair {{{exporter}, {importer}}}", reason="UNKNOWN_PAIR",
                               metadata={"exporter_wl": exporter, "importer_wl": importer})
            if not request.force:
                for wl in (exporter, importer):
                    await capabilities.require(tx.conn, wl, capabilities.ROLLOUT_CAPS)
            before = await _load(tx, exporter, importer)
            base = before or RolloutRecord(exporter=exporter, importer=importer, stage=Stage.PILOT, held=False,
                                           hold_reason="", pilot=Limits(), expansion=Limits(),
                                           step_back_on_breach=False, changed_version=tx.version)
            after = replace(
                base, stage=stage or base.stage, pilot=pilot if pilot is not None else base.pilot,
                expansion=expansion if expansion is not None else base.expansion,
                step_back_on_breach=(request.step_back_on_breach if request.HasField("step_back_on_breach")
                                     else base.step_back_on_breach),
                changed_version=tx.version)
            if before is not None and before.audit_state() == after.audit_state():
                return before
            await _write(tx, before, after, "rollout.force_configure" if request.force else "rollout.configure", why)
            return after

        return await self._changes.run("rollout.configure", actor, body)

    async def _step(self, actor: str, exporter_wl: str, importer_wl: str, reason: str, *, forward: bool
                    ) -> Committed[RolloutRecord]:
        exporter, importer = self._direction(exporter_wl, importer_wl)
        why = validation.reason("reason", reason)
        action = "rollout.promote" if forward else "rollout.rollback"

        async def body(tx: Tx) -> RolloutRecord:
            before = await self._require(tx, exporter, importer)
            if forward and before.held:
                raise FailedPrecondition(
                    f"the rollout of {exporter}->{importer} is held ({before.hold_reason}); release the hold first",
                    reason="ROLLOUT_HELD", metadata={"stage": before.stage.value, "hold_reason": before.hold_reason})
            target = before.stage.next() if forward else before.stage.previous()
            if target is None:
                raise FailedPrecondition(
                    f"the rollout of {exporter}->{importer} is already at {before.stage.value}",
                    reason="ROLLOUT_STAGE_LIMIT", metadata={"stage": before.stage.value})
            after = replace(before, stage=target, changed_version=tx.version)
            await _write(tx, before, after, action, why)
            return after

        return await self._changes.run(action, actor, body)

    async def promote(self, actor: str, exporter: str, importer: str, reason: str) -> Committed[RolloutRecord]:
        return await self._step(actor, exporter, importer, reason, forward=True)

    async def rollback(self, actor: str, exporter: str, importer: str, reason: str) -> Committed[RolloutRecord]:
        return await self._step(actor, exporter, importer, reason, forward=False)

    async def hold(self, actor: str, exporter_wl: str, importer_wl: str, *, held: bool, reason: str,
                   automatic: bool = False) -> Committed[RolloutRecord]:
        """Hold (or release) the stage; an automatic hold also steps back one stage when the policy says so."""
        exporter, importer = self._direction(exporter_wl, importer_wl)
        why = validation.text("reason", reason, max_chars=MAX_HOLD_REASON_CHARS, required=False)
        action = ("rollout.auto_hold" if automatic else "rollout.hold") if held else "rollout.release"

        async def body(tx: Tx) -> RolloutRecord:
            before = await self._require(tx, exporter, importer)
            if before.held == held:
                return before  # nothing to do: rolls back
            stage = before.stage
            if automatic and before.step_back_on_breach and stage is Stage.EXPANSION:
                stage = Stage.PILOT
            # A release starts the SLO judgement afresh from the next whole minute (the SLO store's granularity).
            since = before.slo_since if held else (tx.now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1))
            after = replace(before, held=held, hold_reason=why if held else "", stage=stage,
                            changed_version=tx.version, slo_since=since)
            await _write(tx, before, after, action, why)
            if automatic:
                for hook in self._held_hooks:
                    await hook(tx, before, after)
            return after

        return await self._changes.run(action, actor, body)

    @staticmethod
    async def _require(tx: Tx, exporter: str, importer: str) -> RolloutRecord:
        found = await _load(tx, exporter, importer)
        if found is None:
            raise NotFound(f"no rollout for {exporter}->{importer}", reason="ROLLOUT_NOT_FOUND",
                           metadata={"exporter_wl": exporter, "importer_wl": importer})
        return found

    async def list(self, wl_id: str = "") -> list[RolloutRecord]:
        query = sa.select(directions).order_by(directions.c.exporter, directions.c.importer)
        if wl_id:
            wl = validation.wl_id("wl_id", wl_id)
            query = query.where((directions.c.exporter == wl) | (directions.c.importer == wl))
        async with self.engine.connect() as conn:
            return [RolloutRecord.from_row(r) for r in (await conn.execute(query)).mappings()]
