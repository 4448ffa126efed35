"""Rebuild every pair's balance from the stored events and compare it with the incremental one.

``recompute`` applies the same rules (``ledger.apply``) to ``risk_events`` read back in storage order (the
CP's own GRACE_EXPIRED markers included), without using ``risk_orders`` or ``risk_balances``; ``check`` reports
every pair where the two disagree. Run it as ``python -m cp_server.risk.recompute --db URL`` (exit status 1 on
a mismatch); the CLI exposes it as ``xcwl risk check``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from xwl_runtime.db import create_engine

from . import tables as t
from .ledger import Balance, EventKind, OrderState, apply, dec_str, pair_of

_PAGE = 10_000
_SALES = frozenset({EventKind.EXPORT_CONFIRMED, EventKind.IMPORT_FINALIZED})


@dataclass(frozen=True)
class Mismatch:
    """A pair whose stored balance differs from the recomputation."""

    wl_a: str
    wl_b: str
    stored: Balance
    recomputed: Balance


@asynccontextmanager
async def _snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One read transaction that sees a single snapshot: REPEATABLE READ on PostgreSQL (READ COMMITTED would let
    each statement see newer commits); on SQLite the engine's transaction already holds one for its duration."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            yield conn


async def recompute(engine: AsyncEngine) -> dict[tuple[str, str], Balance]:
    """Balances per pair from ``risk_events`` alone."""
    async with _snapshot(engine) as conn:
        return await _recompute(conn)


async def _recompute(conn: AsyncConnection) -> dict[tuple[str, str], Balance]:
    e = t.events
    orders: dict[str, OrderState] = {}
    balances: dict[tuple[str, str], Balance] = {}
    last_id = ""
    while True:
        rows = (await conn.execute(
            sa.select(e.c.event_id, e.c.kind, e.c.order_id, e.c.exporter_wl, e.c.importer_wl,
                      e.c.reference_value, e.c.amount, e.c.quantity)
            .where(e.c.event_id > last_id, e.c.kind != EventKind.ENFORCEMENT_ACK.name)
            .order_by(e.c.event_id).limit(_PAGE)
        )).all()
        for r in rows:
            key = pair_of(r.exporter_wl, r.importer_wl)
            state = orders.get(r.order_id) or OrderState(r.order_id, r.exporter_wl, r.importer_wl)
            value = Decimal(r.reference_value) if r.reference_value else None
            kind = EventKind[r.kind]
            amount = Decimal(r.amount) if r.amount and kind in _SALES else None
            applied = apply(state, kind, r.event_id, value, amount, int(r.quantity))
            orders[r.order_id] = applied.state
            balances[key] = balances.get(key, Balance()).moved(key[0], r.exporter_wl, applied.delta)
        if len(rows) < _PAGE:
            break
        last_id = rows[-1].event_id
    return balances


async def check(engine: AsyncEngine) -> list[Mismatch]:
    """Pairs whose incremental balance differs from ``recompute`` (empty when consistent).

    Both sides are read in ONE snapshot, so events ingested while the check runs cannot make it differ.
    """
    b = t.balances
    async with _snapshot(engine) as conn:
        rebuilt = await _recompute(conn)
        stored = {
            (r.wl_a, r.wl_b): Balance(Decimal(r.exports_ab), Decimal(r.exports_ba))
            for r in (await conn.execute(sa.select(b.c.wl_a, b.c.wl_b, b.c.exports_ab, b.c.exports_ba))).all()
        }
    out = []
    for key in sorted(stored.keys() | rebuilt.keys()):
        have, want = stored.get(key, Balance()), rebuilt.get(key, Balance())
        if have != want:
            out.append(Mismatch(key[0], key[1], have, want))
    return out


async def _main(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        mismatches = await check(engine)
    finally:
        await engine.dispose()
    for m in mismatches:
        print(f"MISMATCH {m.wl_a}/{m.wl_b}: stored {dec_str(m.stored.exports_ab)}/{dec_str(m.stored.exports_ba)} "
              f"recomputed {dec_str(m.recomputed.exports_ab)}/{dec_str(m.recomputed.exports_ba)}")
    if not mismatches:
        print("balances consistent with stored events")
    return 1 if mismatches else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check incremental balances against a recomputation")
    parser.add_argument("--db", required=True, help="CP database URL")
    return asyncio.run(_main(parser.parse_args(argv).db))


if __name__ == "__main__":
    sys.exit(main())
