"""Pair and direction policies: create on first use, update with validation and FX guardrails, read.

Defaults of a pair created on first use (see ``docs/cp.md``): status ACTIVE, imbalance limit 0 (no net trade
allowed until an operator sets a limit), imports not frozen, FX derived from the two WLs' reference rates
(``ref_a / ref_b``, FX-rounded) unless given, fx_version 1; both directions import_enabled=false,
destination_visible=false, export_delay 0 — so a new pair trades nothing until both sides opt in.

FX guardrails: the rate must lie in [1/max_fx_rate, max_fx_rate]; a change of an existing rate by more than
``max_fx_step`` (relative to the stored rate) is refused with INVALID_ARGUMENT / FX_STEP_TOO_LARGE unless
``force_fx`` is set, in which case the audit action is ``pair_policy.force_fx``. ``imports_frozen`` is the kill
switch: it freezes every import of the pair at once, and is carried in every view of both WLs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.settings import CpSettings
from xwl_runtime.errors import FieldViolation, InvalidArgument, NotFound

from . import validation as v
from .changes import ChangeRunner, Committed, Tx
from .records import DirectionRecord, PairRecord, Status, ordered
from .registry import require_known
from .schema import directions, pairs

DEFAULT_STATUS = Status.ACTIVE
DEFAULT_LIMIT = Decimal(0)
FX_STEP_REASON = "FX_STEP_TOO_LARGE"
SELF_PAIR_REASON = "SELF_PAIR"

StatusHook = Callable[[Tx, Status | None, PairRecord, str], Awaitable[None]]
"""``hook(tx, previous, pair, reason)`` runs inside the change's transaction whenever a pair's status changes
(``previous`` None: the pair was just created with a status other than ACTIVE); it may write in ``tx.conn``
(the signal path issues a PAIR_STATUS signal there, so the signal exists iff the change commits)."""


# The statements of the change path, built once (a statement object memoizes its cache key, so executing it
# skips building and keying; parameters are bound per call). Key parameters are prefixed "k_" because an
# UPDATE reserves the column names for its SET values.
_LOAD_PAIR = sa.select(pairs).where(pairs.c.wl_a == sa.bindparam("k_a"), pairs.c.wl_b == sa.bindparam("k_b"))
_LOAD_DIRECTIONS = sa.select(directions).where(
    sa.or_(
        sa.and_(directions.c.exporter == sa.bindparam("k_a"), directions.c.importer == sa.bindparam("k_b")),
        sa.and_(directions.c.exporter == sa.bindparam("k_b"), directions.c.importer == sa.bindparam("k_a")),
    )
)
_INSERT_PAIR = pairs.insert()
_UPDATE_PAIR = pairs.update().where(pairs.c.wl_a == sa.bindparam("k_a"), pairs.c.wl_b == sa.bindparam("k_b"))
_INSERT_DIRECTION = directions.insert()
_UPDATE_DIRECTION = directions.update().where(
    directions.c.exporter == sa.bindparam("k_exporter"), directions.c.importer == sa.bindparam("k_importer")
)


async def load_pair(conn: AsyncConnection, wl_a: str, wl_b: str) -> PairRecord | None:
    """The pair {wl_a, wl_b} (stored order) with its directions."""
    keys = {"k_a": wl_a, "k_b": wl_b}
    row = (await conn.execute(_LOAD_PAIR, keys)).mappings().first()
    if row is None:
        return None
    dir_rows = (await conn.execute(_LOAD_DIRECTIONS, keys)).mappings().all()
    by_key = {(r["exporter"], r["importer"]): DirectionRecord.from_row(r) for r in dir_rows}
    found = tuple(d for d in (by_key.get((wl_a, wl_b)), by_key.get((wl_b, wl_a))) if d is not None)
    return PairRecord.from_row(row, found)


def _distinct(field_x: str, x: str, field_y: str, y: str) -> None:
    v.wl_id(field_x, x)
    v.wl_id(field_y, y)
    if x == y:
        raise InvalidArgument(
            f"{field_y}: a WL cannot pair with itself",
            violations=[FieldViolation(field_y, "must differ from " + field_x)],
            reason=SELF_PAIR_REASON,
        )


class PairPolicies:
    """Creates, updates and reads pair and direction policies."""

    def __init__(self, changes: ChangeRunner, settings: CpSettings) -> None:
        self._changes = changes
        self._max_fx_rate = settings.max_fx_rate
        self._max_fx_step = settings.max_fx_step
        self._status_hooks: list[StatusHook] = []

    def add_status_hook(self, hook: StatusHook) -> None:
        """Run ``hook`` in the transaction of every change of a pair's status (see ``StatusHook``)."""
        self._status_hooks.append(hook)

    # --- reads -----------------------------------------------------------------------------------------------
    async def get(self, wl_x: str, wl_y: str) -> PairRecord:
        _distinct("wl_a", wl_x, "wl_b", wl_y)
        a, b = ordered(wl_x, wl_y)
        async with self._changes.engine.connect() as conn:
            found = await load_pair(conn, a, b)
        if found is None:
            raise NotFound(f"no policy for pair {{{a}, {b}}}", reason="UNKNOWN_PAIR", metadata={"wl_a": a, "wl_b": b})
        return found

    async def list(self, wl_id: str = "") -> list[PairRecord]:
        if wl_id:
            v.wl_id("wl_id", wl_id)
        async with self._changes.engine.connect() as conn:
            query = sa.select(pairs.c.wl_a, pairs.c.wl_b).order_by(pairs.c.wl_a, pairs.c.wl_b)
            if wl_id:
                query = query.where(sa.or_(pairs.c.wl_a == wl_id, pairs.c.wl_b == wl_id))
            keys = (await conn.execute(query)).all()
            found = [await load_pair(conn, k.wl_a, k.wl_b) for k in keys]
        return [p for p in found if p is not None]

    # --- writes ----------------------------------------------------------------------------------------------
    async def update_pair(
        self,
        actor: str,
        *,
        wl_x: str,
        wl_y: str,
        status: Status | None = None,
        imbalance_limit: str | None = None,
        fx_rate: str | None = None,
        force_fx: bool = False,
        imports_frozen: bool | None = None,
        reason: str = "",
    ) -> Committed[PairRecord]:
        """Change the relationship fields given (None = keep), creating the pair on first use.

        ``fx_rate`` is in the request's order: units of ``wl_y``'s currency per unit of ``wl_x``'s.
        """
        _distinct("wl_a", wl_x, "wl_b", wl_y)
        a, b = ordered(wl_x, wl_y)
        limit = v.imbalance_limit("imbalance_limit", imbalance_limit) if imbalance_limit is not None else None
        fx: Decimal | None = None
        if fx_rate is not None:
            given = v.decimal_value("fx_rate", fx_rate, positive=True)
            fx = v.round_fx(given) if (wl_x, wl_y) == (a, b) else v.invert_fx(given)
            v.fx_in_bounds("fx_rate", fx, self._max_fx_rate)
        why = v.reason("reason", reason)

        async def body(tx: Tx) -> PairRecord:
            before = await self._existing_or_default(tx, a, b, given_fx=fx)
            existing = before if before.changed_version > 0 else None
            forced = False
            new_fx, fx_version = before.fx_rate, before.fx_version
            if fx is not None and fx != before.fx_rate:
                if existing is not None:
                    forced = self._check_step(before.fx_rate, fx, force_fx)
                    fx_version += 1
                new_fx = fx
            after = replace(
                before,
                status=status if status is not None else before.status,
                imbalance_limit=limit if limit is not None else before.imbalance_limit,
                fx_rate=new_fx,
                fx_version=fx_version,
                imports_frozen=imports_frozen if imports_frozen is not None else before.imports_frozen,
            )
            if existing is not None and after.audit_state() == existing.audit_state():
                return existing
            action = "pair_policy.force_fx" if forced else ("pair_policy.update" if existing else "pair_policy.create")
            return await self._write(tx, existing, after, action, {"reason": why, "fx_forced": forced})

        return await self._changes.run("pair_policy.update", actor, body)

    async def update_direction(
        self,
        actor: str,
        *,
        exporter: str,
        importer: str,
        import_enabled: bool | None = None,
        destination_visible: bool | None = None,
        export_delay: tuple[int, int] | None = None,
        reason: str = "",
    ) -> Committed[PairRecord]:
        """Change one direction (None = keep), creating the pair on first use. ``export_delay`` = (s, nanos)."""
        _distinct("exporter_wl", exporter, "importer_wl", importer)
        delay = v.export_delay_s("export_delay", *export_delay) if export_delay is not None else None
        why = v.reason("reason", reason)
        a, b = ordered(exporter, importer)

        async def body(tx: Tx) -> PairRecord:
            before = await self._existing_or_default(tx, a, b, given_fx=None, wl_fields=("exporter_wl", "importer_wl")
                                                     if exporter == a else ("importer_wl", "exporter_wl"))
            existing = before if before.changed_version > 0 else None
            new_dirs = []
            for d in before.directions:
                if (d.exporter, d.importer) == (exporter, importer):
                    d = replace(
                        d,
                        import_enabled=import_enabled if import_enabled is not None else d.import_enabled,
                        destination_visible=(
                            destination_visible if destination_visible is not None else d.destination_visible
                        ),
                        export_delay_s=delay if delay is not None else d.export_delay_s,
                    )
                new_dirs.append(d)
            after = replace(before, directions=tuple(new_dirs))
            if existing is not None and after.audit_state() == existing.audit_state():
                return existing
            action = "direction_policy.update" if existing else "pair_policy.create"
            extra: dict[str, object] = {"reason": why, "direction": f"{exporter}->{importer}"}
            return await self._write(tx, existing, after, action, extra)

        return await self._changes.run("direction_policy.update", actor, body)

    # --- helpers ---------------------------------------------------------------------------------------------
    def _check_step(self, old: Decimal, new: Decimal, force: bool) -> bool:
        """True when the change needed (and had) ``force``; raises when it needed it and did not have it."""
        step = abs(new - old) / old
        if step <= self._max_fx_step:
            return False
        if force:
            return True
        raise InvalidArgument(
            f"fx_rate: change of {step:.2%} exceeds the maximum step {self._max_fx_step:.2%}; set force_fx to apply",
            violations=[FieldViolation("fx_rate", f"relative change {step:.4f} > max step {self._max_fx_step}")],
            reason=FX_STEP_REASON,
            metadata={"current_fx_rate": v.fmt(old), "requested_fx_rate": v.fmt(new),
                      "max_fx_step": str(self._max_fx_step)},
        )

    async def _existing_or_default(
        self, tx: Tx, a: str, b: str, *, given_fx: Decimal | None, wl_fields: tuple[str, str] = ("wl_a", "wl_b")
    ) -> PairRecord:
        """The stored pair, or an unsaved default one (changed_version 0) after checking both WLs exist."""
        found = await load_pair(tx.conn, a, b)
        if found is not None:
            return found  # both WLs exist: foreign keys, and WLs are never deleted
        wl_a = await require_known(tx.conn, wl_fields[0], a)
        wl_b = await require_known(tx.conn, wl_fields[1], b)
        fx = given_fx
        if fx is None:
            fx = v.derived_fx(wl_a.reference_rate, wl_b.reference_rate)
            v.fx_in_bounds("fx_rate", fx, self._max_fx_rate)
        default_dir = DirectionRecord(a, b, import_enabled=False, destination_visible=False, export_delay_s=0,
                                      changed_version=0)
        return PairRecord(
            wl_a=a, wl_b=b, status=DEFAULT_STATUS, imbalance_limit=DEFAULT_LIMIT, fx_rate=fx, fx_version=1,
            imports_frozen=False, created_at=tx.now, updated_at=tx.now, changed_version=0,
            directions=(default_dir, replace(default_dir, exporter=b, importer=a)),
        )

    async def _write(
        self, tx: Tx, existing: PairRecord | None, after: PairRecord, action: str, extra: dict[str, object]
    ) -> PairRecord:
        old_dirs = {(d.exporter, d.importer): d for d in (existing.directions if existing else ())}
        dirs = tuple(
            d if old_dirs.get((d.exporter, d.importer)) == d else replace(d, changed_version=tx.version)
            for d in after.directions
        )
        after = replace(after, directions=dirs, updated_at=tx.now, changed_version=tx.version)
        values = {
            "status": after.status.value, "imbalance_limit": v.fmt(after.imbalance_limit),
            "fx_rate": v.fmt(after.fx_rate), "fx_version": after.fx_version, "imports_frozen": after.imports_frozen,
            "updated_at": after.updated_at, "changed_version": after.changed_version,
        }
        if existing is None:
            await tx.conn.execute(
                _INSERT_PAIR, {"wl_a": after.wl_a, "wl_b": after.wl_b, "created_at": after.created_at, **values}
            )
        else:
            await tx.conn.execute(_UPDATE_PAIR, {"k_a": after.wl_a, "k_b": after.wl_b, **values})
        for d in dirs:
            if (d.exporter, d.importer) not in old_dirs:
                await tx.conn.execute(_INSERT_DIRECTION, _dir_row(d))
            elif old_dirs[(d.exporter, d.importer)] != d:
                row = _dir_row(d)
                await tx.conn.execute(
                    _UPDATE_DIRECTION,
                    {"k_exporter": row.pop("exporter"), "k_importer": row.pop("importer"), **row},
                )
        await tx.audit(
            action,
            f"pair/{after.wl_a}/{after.wl_b}",
            existing.audit_state() if existing else None,
            {**after.audit_state(), **extra},
        )
        previous = existing.status if existing is not None else None
        if after.status is not (previous or DEFAULT_STATUS):  # changed, or created other than ACTIVE
            for hook in self._status_hooks:
                await hook(tx, previous, after, str(extra.get("reason", "")))
        return after


def _dir_row(d: DirectionRecord) -> dict[str, object]:
    return {
        "exporter": d.exporter, "importer": d.importer, "import_enabled": d.import_enabled,
        "destination_visible": d.destination_visible, "export_delay_s": d.export_delay_s,
        "changed_version": d.changed_version,
    }
