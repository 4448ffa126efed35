"""``xcwl.bench._interleave``: variants alternate round by round; figures are medians over each variant's rounds."""

from __future__ import annotations

import math
import statistics

from xcwl.bench._interleave import Round, interleave, medians, percentile, ratio, round_orders


def test_round_orders_alternate_so_a_linear_drift_lands_on_every_variant_alike() -> None:
    assert round_orders(["a", "b", "c"], 3) == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]
    positions = {v: [order.index(v) for order in round_orders(["a", "b"], 4)] for v in "ab"}
    assert sum(positions["a"]) == sum(positions["b"])


async def test_interleave_measures_in_alternating_order_and_keeps_each_variants_median() -> None:
    calls: list[str] = []
    clock = iter(range(100))

    async def measure(variant: str) -> dict[str, float]:
        calls.append(variant)
        t = next(clock)  # a machine that slows down steadily: each round costs more than the last
        return {"ms": float(t + (10 if variant == "slow" else 0))}

    out = await interleave(["fast", "slow"], 4, measure)
    assert calls == ["fast", "slow", "slow", "fast", "fast", "slow", "slow", "fast"]
    # fast at t 0,3,4,7; slow at 1,2,5,6 (+10)
    assert (out.medians("fast"), out.medians("slow")) == ({"ms": 3.5}, {"ms": 13.5})
    assert out.ratio("ms", "slow", "fast") == round(13.5 / 3.5, 3)
    # same-round ratios 11/0, 12/3, 15/4, 16/7: the first has no positive base and is left out
    assert out.paired_ratio("ms", "slow", "fast") == round(15 / 4, 3)


def test_medians_shrug_off_one_spoiled_round_and_ratio_refuses_a_zero_base() -> None:
    assert medians([{"x": 1.0}, {"x": 1.2}, {"x": 90.0}]) == {"x": 1.2}
    assert math.isnan(ratio(1.0, 0.0))


async def test_latency_percentiles_come_from_the_pooled_samples_of_all_rounds() -> None:
    # Each round of 100 samples has one slow outlier; a per-round p99 is an interpolation near that single sample,
    # the pool's p99 sits among the four outliers of all rounds together.
    rounds = iter([[1.0] * 99 + [50.0], [1.0] * 99 + [60.0], [1.0] * 99 + [70.0], [1.0] * 99 + [80.0]])

    async def measure(variant: str) -> Round:
        samples = next(rounds)
        return Round({"ms.p99_ms": percentile(samples, 0.99), "ops": 1.0}, {"ms": samples})

    out = await interleave(["a", "b"], 2, measure)
    a = out.medians("a")
    assert a["ops"] == 1.0
    assert a["ms.p50_ms"] == 1.0
    assert a["ms.p99_ms"] == round(percentile([1.0] * 198 + [50.0, 80.0], 0.99), 3)  # rounds 1 and 4 were a's
    assert a["ms.p999_ms"] == round(percentile([1.0] * 198 + [50.0, 80.0], 0.999), 3)
    # The same-round ratio still reads the per-round figure.
    assert out.paired_ratio("ms.p99_ms", "b", "a") == round(
        statistics.median([percentile([1.0] * 99 + [60.0], 0.99) / percentile([1.0] * 99 + [50.0], 0.99),
                           percentile([1.0] * 99 + [70.0], 0.99) / percentile([1.0] * 99 + [80.0], 0.99)]), 3)


def test_percentile_of_nothing_is_nan_and_of_one_sample_is_that_sample() -> None:
    assert math.isnan(percentile([], 0.99))
    assert percentile([7.0], 0.99) == 7.0
