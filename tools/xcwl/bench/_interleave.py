"""Feature-on vs feature-off in the same run: every variant alive at once, measured in alternating short rounds.

Running one variant after the other measures the machine's drift as much as the feature: on a shared 2-core machine
two back-to-back runs of identical code differ by ±30%. So a bench that compares variants (encrypted vs plaintext
storage, observed vs plain nodes) starts all of them, then measures ``rounds`` short rounds of each, alternating
the order (A B, B A, A B, … : a linear drift lands on every variant alike), and reports per variant the MEDIAN of
its per-round figures (a burst from a neighbour spoils one round, not the figure) and the ratio of those medians.
Beside it, ``paired_ratio``: the median over the rounds of variant B's figure / variant A's figure in the same
round (measured back to back, so under the same load); on a machine shared with other work it is the steadier of
the two. CPU time per operation, measured per round in every process, is the steadiest figure of all.

Latency percentiles are the exception to "median of rounds": a round of a few hundred operations has a p99 made of
two or three samples and a p99.9 of one, so the median of such figures still swings ±20% between identical runs.
A round may therefore hand back its raw samples (``Round.samples``, series name → milliseconds); every round of a
variant measures the same number of operations, so the samples of all its rounds pooled weigh each round alike, and
``<series>.{p50,p99,p999}_ms`` are the percentiles of that pool (``PERCENTILES``), taking the place of any per-round
figure of the same name.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

RoundFigures = Mapping[str, float]
"""The figures of one round of one variant (figure name → number)."""

PERCENTILES = ((0.5, "p50"), (0.99, "p99"), (0.999, "p999"))
"""The percentiles computed over each series' pooled samples."""


@dataclass(frozen=True)
class Round:
    """One round's figures and, per latency series, its raw samples in milliseconds."""

    figures: RoundFigures
    samples: Mapping[str, Sequence[float]] = field(default_factory=dict)


def round_orders(variants: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of the variants in each round: as given, then reversed, alternately."""
    return [list(variants) if r % 2 == 0 else list(reversed(variants)) for r in range(rounds)]


@dataclass(frozen=True)
class Interleaved:
    """Every round's figures of every variant (``rounds[variant][r]``) and each series' samples pooled over the
    variant's rounds (``pooled[variant][series]``)."""

    rounds: Mapping[str, Sequence[RoundFigures]]
    pooled: Mapping[str, Mapping[str, Sequence[float]]] = field(default_factory=dict)

    def medians(self, variant: str) -> dict[str, float]:
        """``variant``'s figures: the median of each figure over its rounds, and the percentiles of each pooled
        series (``<series>.p99_ms``, …) in place of the per-round ones."""
        out = medians(self.rounds[variant])
        for series, samples in self.pooled.get(variant, {}).items():
            for q, name in PERCENTILES:
                out[f"{series}.{name}_ms"] = round(percentile(samples, q), 3)
        return out

    def ratio(self, figure: str, numerator: str, denominator: str) -> float:
        """``figure`` of ``numerator`` / ``figure`` of ``denominator`` (as ``medians`` gives them)."""
        return ratio(self.medians(numerator)[figure], self.medians(denominator)[figure])

    def paired_ratio(self, figure: str, numerator: str, denominator: str) -> float:
        """The median over rounds of ``numerator``'s ``figure`` / ``denominator``'s in the same round."""
        pairs = [ratio(a[figure], b[figure])
                 for a, b in zip(self.rounds[numerator], self.rounds[denominator], strict=True)]
        finite = [p for p in pairs if p == p]
        return round(statistics.median(finite), 3) if finite else float("nan")


async def interleave(variants: Sequence[str], rounds: int,
                     measure: Callable[[str], Awaitable[RoundFigures | Round]],
                     before_round: Callable[[], Awaitable[None]] | None = None) -> Interleaved:
    """Run ``measure(variant)`` ``rounds`` times per variant, the variants in alternating order each round;
    ``before_round()`` (unmeasured) before each (e.g. a store checkpoint, so no variant's round inherits the
    write-back of the rounds before it)."""
    seen: dict[str, list[RoundFigures]] = {v: [] for v in variants}
    pooled: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    for order in round_orders(variants, rounds):
        for variant in order:
            if before_round is not None:
                await before_round()
            got = await measure(variant)
            if isinstance(got, Round):
                seen[variant].append(got.figures)
                for series, samples in got.samples.items():
                    pooled[variant].setdefault(series, []).extend(samples)
            else:
                seen[variant].append(got)
    return Interleaved(seen, pooled)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` (inclusive method, interpolated; nan when empty): every bench's percentiles."""
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return float(samples[0])
    return statistics.quantiles(samples, n=1000, method="inclusive")[min(999, max(1, round(q * 1000))) - 1]


def medians(rounds: Sequence[RoundFigures]) -> dict[str, float]:
    """The median of each figure over the rounds that measured it."""
    names = {name for figures in rounds for name in figures}
    return {name: round(statistics.median([f[name] for f in rounds if name in f]), 3) for name in sorted(names)}


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` rounded to 3 places (nan when the denominator is not positive)."""
    return round(numerator / denominator, 3) if denominator > 0 else float("nan")
