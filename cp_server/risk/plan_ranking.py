"""Ranking the reverse-direction offers of a compensation plan (pure; no I/O).

A DISABLE of direction E→I says "I imported too much from E": the pair gets back under its alert level when I
exports ``required`` (reference unit) to E. The candidates are I's offers as E sees them (I's digest for
destination E). The rule:

1. **Value** each offer in the reference unit: ``unit = unit_price × reference_rate`` of I's currency (exact
   Decimal), ``value = unit × stock``. Offers without stock or with a non-positive unit value are left out.
2. **Order** by ``value`` descending, then ``unit`` ascending (finer steps), then ``offer_id`` (deterministic).
   The offers that can cover the whole remaining value alone therefore come first, the deepest first.
3. **Take** offers in that order until their stock covers ``required`` or ``max_offers`` are listed. Each listed
   offer gets ``cover_quantity``: the fewest units of it that cover what the offers before it leave uncovered
   (``ceil(remaining / unit)``, at most its stock).

Taking the largest values first lists the fewest offers that can cover ``required`` (no smaller set of candidates
reaches it: the k largest values are the largest sum of any k). When even ``max_offers`` offers (or all of them)
cannot cover it, the plan lists the best ones and is partial; the signal's ``required_reference_value`` says how
much is needed in total.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from .ledger import RISK_CONTEXT, ZERO


@dataclass(frozen=True)
class PlanCandidate:
    """An offer of the compensating exporter, priced in its own currency."""

    offer_id: str
    title: str
    unit_price: Decimal
    stock: int


@dataclass(frozen=True)
class RankedOffer:
    """A listed offer: its reference values and how many units of it the plan counts on."""

    candidate: PlanCandidate
    unit_reference_value: Decimal
    reference_value: Decimal
    cover_quantity: int


def units_to_cover(remaining: Decimal, unit: Decimal) -> int:
    """The fewest whole units of value ``unit`` (> 0) whose total reaches ``remaining`` (0 if nothing remains)."""
    if remaining <= ZERO:
        return 0
    q = int(RISK_CONTEXT.divide(remaining, unit).to_integral_value(rounding=ROUND_CEILING))
    # Guard the last digit of a rounded quotient: the answer is exact on the products, not on the division.
    while q > 0 and RISK_CONTEXT.multiply(Decimal(q - 1), unit) >= remaining:
        q -= 1
    while RISK_CONTEXT.multiply(Decimal(q), unit) < remaining:
        q += 1
    return q


def rank(
    candidates: Iterable[PlanCandidate], *, required: Decimal, reference_rate: Decimal, max_offers: int
) -> list[RankedOffer]:
    """The plan's offers, best first (see the module docstring); empty when nothing is required."""
    if required <= ZERO or max_offers < 1 or reference_rate <= ZERO:
        return []
    valued: list[tuple[Decimal, Decimal, PlanCandidate]] = []
    for c in candidates:
        if c.stock < 1:
            continue
        unit = RISK_CONTEXT.multiply(c.unit_price, reference_rate)
        if unit <= ZERO:
            continue
        valued.append((RISK_CONTEXT.multiply(unit, Decimal(c.stock)), unit, c))
    valued.sort(key=lambda v: (-v[0], v[1], v[2].offer_id))
    out: list[RankedOffer] = []
    remaining = required
    for value, unit, c in valued:
        if remaining <= ZERO or len(out) >= max_offers:
            break
        quantity = min(c.stock, units_to_cover(remaining, unit))
        out.append(RankedOffer(c, unit, value, quantity))
        remaining = RISK_CONTEXT.subtract(remaining, RISK_CONTEXT.multiply(unit, Decimal(quantity)))
    return out
