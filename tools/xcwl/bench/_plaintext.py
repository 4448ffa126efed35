"""The encryption-overhead figures of benches run twice: with personal data encrypted at rest, and with
``--compare-plaintext`` once more storing it as given (``<figure>.plaintext``)."""

from __future__ import annotations

PLAINTEXT_SUFFIX = ".plaintext"


def encryption_overhead(figures: dict[str, float], area: str) -> dict[str, float]:
    """``<area>.encryption_overhead.<figure>`` = encrypted / plaintext for every ``<area>.`` figure measured both
    ways (baselines excluded: they store no personal data; so are maxima: one sample each, which no second run
    reproduces)."""
    out: dict[str, float] = {}
    for key, value in figures.items():
        plain = figures.get(key + PLAINTEXT_SUFFIX)
        if plain and key.startswith(area + ".") and not key.endswith(PLAINTEXT_SUFFIX) \
                and not key.startswith(area + ".baseline") and ".max_ms" not in key:
            out[f"{area}.encryption_overhead.{key.removeprefix(area + '.')}"] = round(value / plain, 3)
    return out
