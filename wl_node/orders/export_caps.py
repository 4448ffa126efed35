"""The exporter's rollout check on PlaceOrder, inside the order's own transaction.

The order desk calls ``charge`` after it reserved the stock, in the same transaction, so a refusal (raised) rolls
back the stock reservation, the order and the idempotency claim together: nothing of a refused order persists.

The daily cap is counted race-free by one conditional UPDATE on the (importer, day) row::

    UPDATE rollout_daily_usage SET used_e8 = used_e8 + :v
     WHERE importer_wl = :i AND day = :d AND used_e8 + :v <= :cap

On PostgreSQL concurrent orders queue on the row lock and re-check the condition on the latest committed value
(READ COMMITTED), on SQLite writers are serialized: confirmed value per day never passes the cap, under any
concurrency. The row is created first with ``INSERT … ON CONFLICT DO NOTHING``. Amounts are integers of 10⁻⁸ of
the exporter's currency, rounded up, so rounding never admits more than the cap. A cancelled order keeps counting
for its day (conservative: the cap is a ceiling on what was sold, not on what stayed sold).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, Decimal

import sqlalchemy as sa

from wl_node.rollout.rules import StageRule

from .rawsql import Sql

SCALE = Decimal("1e8")

_ENSURE = Sql(
    "INSERT INTO rollout_daily_usage (importer_wl, day, used_e8) VALUES (:importer, :day, 0) "
    "ON CONFLICT (importer_wl, day) DO NOTHING")
_TAKE = Sql(
    "UPDATE rollout_daily_usage SET used_e8 = used_e8 + :value WHERE importer_wl = :importer AND day = :day "
    "AND used_e8 + :value <= :cap")
_USED = Sql("SELECT used_e8 FROM rollout_daily_usage WHERE importer_wl = :importer AND day = :day")


def to_e8(value: Decimal) -> int:
    return int((value * SCALE).to_integral_value(rounding=ROUND_CEILING))


def charge(conn: sa.Connection, rule: StageRule, buyer_hash: str, value: Decimal, now: dt.datetime) -> None:
    """Cohort, maximum order value and daily cap of ``rule`` for one order; raises FAILED_PRECONDITION."""
    rule.check(buyer_hash, value)
    if rule.daily_value_cap is None:
        return
    day = now.astimezone(dt.UTC).date()
    params = {"importer": rule.importer_wl, "day": day.isoformat(), "value": to_e8(value),
              "cap": to_e8(rule.daily_value_cap)}
    _ENSURE.run(conn, params)
    if _TAKE.run(conn, params).rowcount == 1:
        return
    row = _USED.run(conn, params).fetchone()
    used = Decimal(int(row[0]) if row is not None else 0) / SCALE
    raise rule.refuse_daily(used, value, day)


def used_today(conn: sa.Connection, importer_wl: str, now: dt.datetime) -> Decimal:
    """The value charged to ``importer_wl``'s daily cap today (UTC)."""
    row = _USED.run(conn, {"importer": importer_wl, "day": now.astimezone(dt.UTC).date().isoformat()}).fetchone()
    return Decimal(int(row[0]) if row is not None else 0) / SCALE
