"""Feature-on vs feature-off in the same run: every variant alive at once, measured in alternating short rounds.

Running one variant after the other measures the machine's drift as much as the feature: on a shared 2-core machine
two back-to-back runs of identical code differ by ±30%. So a bench that compares variants (encrypted vs plaintext
storage, observed vs plain nodes) starts all of them, then measures ``rounds`` short rounds of each, alternating
the order (A B, B A, A B, … : a linear drift lands on every variant alike), and reports per variant the MEDIAN of
its per-round figures (a burst from a neighbour spoils one round, not the figure) and the ratio of those medians.
Beside it, ``paired_ratio``: the median over the rounds of variant B's figure / variant A's figure in the same
round (measured back to back, so under the same load); on a machine shared with other work it is the steadier of
the two. CPU time per operation, measured per round in every process, is the steadiest figure of all.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

RoundFigures = Mapping[str, float]
"""The figures of one round of one variant (figure name → number)."""


def round_orders(variants: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of the variants in each round: as given, then reversed, alternately."""
    return [list(variants) if r % 2 == 0 else list(reversed(variants)) for r in range(rounds)]


@dataclass(frozen=True)
class Interleaved:
    """Every round's figures of every variant (``rounds[variant][r]``)."""

    rounds: Mapping[str, Sequence[RoundFigures]]

    def medians(self, variant: str) -> dict[str, float]:
        """The median of each figure over ``variant``'s rounds."""
        return medians(self.rounds[variant])

    def ratio(self, figure: str, numerator: str, denominator: str) -> float:
        """Median of ``figure`` for ``numerator`` / its median for ``denominator``."""
        return ratio(self.medians(numerator)[figure], self.medians(denominator)[figure])

    def paired_ratio(self, figure: str, numerator: str, denominator: str) -> float:
        """The median over rounds of ``numerator``'s ``figure`` / ``denominator``'s in the same round."""
        pairs = [ratio(a[figure], b[figure])
                 for a, b in zip(self.rounds[numerator], self.rounds[denominator], strict=True)]
        finite = [p for p in pairs if p == p]
        return round(statistics.median(finite), 3) if finite else float("nan")


async def interleave(variants: Sequence[str], rounds: int,
                     measure: Callable[[str], Awaitable[RoundFigures]]) -> Interleaved:
    """Run ``measure(variant)`` ``rounds`` times per variant, the variants in alternating order each round."""
    seen: dict[str, list[RoundFigures]] = {v: [] for v in variants}
    for order in round_orders(variants, rounds):
        for variant in order:
            seen[variant].append(await measure(variant))
    return Interleaved(seen)


def medians(rounds: Sequence[RoundFigures]) -> dict[str, float]:
    """The median of each figure over the rounds that measured it."""
    names = {name for figures in rounds for name in figures}
    return {name: round(statistics.median([f[name] for f in rounds if name in f]), 3) for name in sorted(names)}


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` rounded to 3 places (nan when the denominator is not positive)."""
    return round(numerator / denominator, 3) if denominator > 0 else float("nan")
