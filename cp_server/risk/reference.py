"""What the risk engine reads from the CP core's registry: currencies, reference rates, pair limits and status.

Read inside the ingest transaction (two small queries per batch), so a batch is valued with one consistent view
of the registry, and a rate change applies from the next batch on.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.store import schema


@dataclass(frozen=True)
class WlRef:
    """A WL's currency and the value of one unit of it in the reference unit."""

    wl_id: str
    currency: str
    reference_rate: Decimal
    decimals: int = 2
    """Decimals of the currency (``currency_decimals``): amounts in it must be canonical at that precision."""


@dataclass(frozen=True)
class PairRef:
    """A registered pair (wl_a < wl_b) with its imbalance limit in the reference unit."""

    wl_a: str
    wl_b: str
    limit: Decimal
    status: str


@dataclass(frozen=True)
class Reference:
    """A consistent snapshot of the registry for one batch."""

    wls: dict[str, WlRef]
    pairs: dict[tuple[str, str], PairRef]


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal(0)


async def load_reference(conn: AsyncConnection, pair_keys: set[tuple[str, str]] | None = None) -> Reference:
    """The WL registry and the pairs (only ``pair_keys`` when given) as seen by ``conn``'s transaction."""
    wl = schema.white_labels
    p = schema.pairs
    wls = {
        r.wl_id: WlRef(r.wl_id, r.currency, _decimal(r.reference_rate), int(r.currency_decimals))
        for r in (await conn.execute(
            sa.select(wl.c.wl_id, wl.c.currency, wl.c.reference_rate, wl.c.currency_decimals))).all()
    }
    query = sa.select(p.c.wl_a, p.c.wl_b, p.c.imbalance_limit, p.c.status)
    if pair_keys is not None:
        if not pair_keys:
            return Reference(wls, {})
        query = query.where(sa.tuple_(p.c.wl_a, p.c.wl_b).in_(sorted(pair_keys)))
    pairs = {
        (r.wl_a, r.wl_b): PairRef(r.wl_a, r.wl_b, _decimal(r.imbalance_limit), r.status)
        for r in (await conn.execute(query)).all()
    }
    return Reference(wls, pairs)
