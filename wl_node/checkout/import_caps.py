"""The importer's rollout check at checkout, before anything is stored or sent.

``ImportCaps.admit`` runs the stage rule of the direction (cohort, maximum order value) and reserves the order's
value against the daily cap in memory, so a refusal costs the exporter nothing and the app gets the reason at
once. The count per (exporter, UTC day) starts from the node's own checkouts of that day made under the rollout
(PENDING and COMPLETED, at a policy version not older than the rollout's last change; read once per day and
rollout version), then follows the reservations of this run: confirmed → counted, released → freed. Checkouts
counted at that first read that later fail stay counted (conservative). The exporter's transactional count is
the authority (``export_caps``); this check keeps the importer from sending orders it already knows are over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa

from wl_node.orders.txn import TxRunner
from wl_node.rollout.rules import RolloutRules, StageRule
from xwl_runtime.clock import Clock

from .tables import COMPLETED, PENDING, checkouts

_Key = tuple[str, dt.date, int]


class DailyReservation:
    """Value reserved against one direction's daily cap for one checkout in flight."""

    def __init__(self, caps: ImportCaps, key: _Key, value: Decimal) -> None:
        self._caps = caps
        self._key = key
        self._value = value
        self._done = False

    def confirm(self) -> None:
        if not self._done:
            self._done = True
            self._caps._settle(self._key, self._value, confirmed=True)

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._caps._settle(self._key, self._value, confirmed=False)


class ImportCaps:
    """Per-direction daily counts of the importer, and the admission of one checkout."""

    def __init__(self, rules: RolloutRules, runner: TxRunner, clock: Clock, wl_id: str) -> None:
        self._rules = rules
        self._runner = runner
        self._clock = clock
        self._wl_id = wl_id
        self._used: dict[_Key, Decimal] = {}
        self._in_flight: dict[_Key, Decimal] = defaultdict(Decimal)
        self._loading: dict[_Key, asyncio.Future[Decimal]] = {}

    async def _load(self, key: _Key) -> None:
        if key in self._used:
            return
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[key] = pending
            try:
                pending.set_result(await self._runner.read(lambda conn: self._read_day(conn, key)))
            except BaseException as err:
                pending.set_exception(err)
                del self._loading[key]
                raise
        value = await asyncio.shield(pending)
        self._used.setdefault(key, value)
        self._loading.pop(key, None)
        # Days gone by are never asked for again.
        for old in [k for k in self._used if k[0] == key[0] and (k[1], k[2]) < (key[1], key[2])]:
            del self._used[old]

    @staticmethod
    def _read_day(conn: sa.Connection, key: _Key) -> Decimal:
        exporter, day, since_version = key
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        c = checkouts.c
        rows = conn.execute(sa.select(c.source_unit_price, c.quantity).where(
            c.exporter_wl == exporter, c.status.in_((PENDING, COMPLETED)), c.created_at >= start,
            c.policy_version >= since_version,
            c.created_at < start + dt.timedelta(days=1))).all()
        return sum((Decimal(r.source_unit_price) * int(r.quantity) for r in rows), Decimal(0))

    def rule(self, exporter_wl: str) -> StageRule | None:
        return self._rules.rule(exporter_wl, self._wl_id)

    async def admit(self, exporter_wl: str, buyer_hash: str, value: Decimal) -> DailyReservation | None:
        """Check the direction's stage rule for one order; reserve its value against the daily cap.

        None when the direction is not restricted or has no daily cap; FAILED_PRECONDITION on refusal.
        """
        rule = self.rule(exporter_wl)
        if rule is None:
            return None
        rule.check(buyer_hash, value)
        if rule.daily_value_cap is None:
            return None
        day = self._clock.now().astimezone(dt.UTC).date()
        key = (exporter_wl, day, rule.since_version)
        await self._load(key)
        cap = rule.daily_value_cap or Decimal(0)
        used = self._used[key] + self._in_flight[key]
        if used + value > cap:
            raise rule.refuse_daily(used, value, day)
        self._in_flight[key] += value  # no await since the check: atomic for the event loop
        return DailyReservation(self, key, value)

    def _settle(self, key: _Key, value: Decimal, *, confirmed: bool) -> None:
        self._in_flight[key] -= value
        if not self._in_flight[key]:
            del self._in_flight[key]
        if confirmed and key in self._used:
            self._used[key] += value
