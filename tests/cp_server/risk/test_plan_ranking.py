"""The compensation plan's ranking rule (``cp_server.risk.plan_ranking``): table cases and properties."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cp_server.risk.plan_ranking import PlanCandidate, rank, units_to_cover


def c(offer_id: str, price: str, stock: int) -> PlanCandidate:
    return PlanCandidate(offer_id, f"title {offer_id}", Decimal(price), stock)


@pytest.mark.parametrize(
    ("candidates", "required", "rate", "max_offers", "want"),
    [
        # One offer covers alone: only it is listed, with the fewest units (ceil(25 / 10) = 3).
        ([c("small", "10", 2), c("big", "10", 50)], "25", "1", 10, [("big", 3)]),
        # Deepest stock value first; the rate scales every unit (10 x 0.5 = 5 per unit).
        ([c("x", "10", 4), c("y", "10", 6)], "45", "0.5", 10, [("y", 6), ("x", 3)]),
        # Not enough stock anywhere: every offer with all its stock, best first (a partial plan).
        ([c("a", "1", 3), c("b", "2", 3)], "100", "1", 10, [("b", 3), ("a", 3)]),
        # At most max_offers.
        ([c("a", "1", 3), c("b", "2", 3), c("c", "3", 3)], "100", "1", 2, [("c", 3), ("b", 3)]),
        # Equal stock values: cheaper unit first (finer steps), then offer id.
        ([c("b", "2", 5), c("a", "10", 1), c("c", "1", 10)], "3", "1", 10, [("c", 3)]),
        ([c("b", "5", 2), c("a", "5", 2)], "4", "1", 10, [("a", 1)]),
        # No stock or a zero price never appears; nothing required → empty plan.
        ([c("none", "10", 0), c("free", "0", 9), c("ok", "1", 1)], "1", "1", 10, [("ok", 1)]),
        ([c("a", "1", 3)], "0", "1", 10, []),
        ([], "10", "1", 10, []),
        # Exact cover needs no extra unit: 3 x 0.37 = 1.11.
        ([c("a", "1", 10)], "1.11", "0.37", 10, [("a", 3)]),
    ],
)
def test_rank_table(
    candidates: list[PlanCandidate], required: str, rate: str, max_offers: int, want: list[tuple[str, int]]
) -> None:
    got = rank(candidates, required=Decimal(required), reference_rate=Decimal(rate), max_offers=max_offers)
    assert [(r.candidate.offer_id, r.cover_quantity) for r in got] == want
    for r in got:
        assert r.unit_reference_value == r.candidate.unit_price * Decimal(rate)
        assert r.reference_value == r.unit_reference_value * r.candidate.stock


def test_units_to_cover_is_the_fewest_units() -> None:
    assert units_to_cover(Decimal("10"), Decimal("3")) == 4
    assert units_to_cover(Decimal("9"), Decimal("3")) == 3
    assert units_to_cover(Decimal("0"), Decimal("3")) == 0
    assert units_to_cover(Decimal("1"), Decimal("0.3333333333333333333333333333333333333333333333333333333333")) == 4


prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)
offers = st.lists(st.tuples(prices, st.integers(0, 40)), max_size=12).map(
    lambda xs: [PlanCandidate(f"o{i}", "", p, s) for i, (p, s) in enumerate(xs)])


@settings(max_examples=300, deadline=None)
@given(offers, st.decimals(min_value=Decimal("0.01"), max_value=Decimal("20000"), places=2),
       st.sampled_from([Decimal("1"), Decimal("0.37"), Decimal("2.5")]), st.integers(1, 6))
def test_rank_properties(candidates: list[PlanCandidate], required: Decimal, rate: Decimal, n: int) -> None:
    got = rank(candidates, required=required, reference_rate=rate, max_offers=n)
    values = sorted((o.unit_price * rate * o.stock for o in candidates if o.stock > 0), reverse=True)
    listed = [r.reference_value for r in got]
    # Bounded, distinct, ranked by stock value (descending).
    assert len(got) <= n
    assert len({r.candidate.offer_id for r in got}) == len(got)
    assert listed == sorted(listed, reverse=True)
    assert listed == values[:len(got)]  # the best values, in order
    # Quantities: within stock, and together they cover the required value iff the listed stock does.
    assert all(0 < r.cover_quantity <= r.candidate.stock for r in got)
    covered = sum((r.unit_reference_value * r.cover_quantity for r in got), Decimal(0))
    if sum(listed, Decimal(0)) >= required:
        assert covered >= required
        # Minimal: one unit less of the last offer would not cover.
        assert covered - got[-1].unit_reference_value < required
        # Fewest offers: no set of len(got) - 1 candidates reaches the required value.
        assert all(sum(combo, Decimal(0)) < required
                   for combo in itertools.combinations(values[:8], len(got) - 1))
    else:
        # Partial only when every candidate (or max_offers of them) is listed with all its stock.
        assert len(got) == min(n, len(values))
        assert all(r.cover_quantity == r.candidate.stock for r in got)
