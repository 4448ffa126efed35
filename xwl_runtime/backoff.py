"""Exponential backoff with full jitter (AWS architecture blog's "full jitter")."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """``next_delay()`` returns uniform(0, min(cap, base * 2**attempt)); ``reset()`` after a success."""

    base_s: float = 0.2
    cap_s: float = 3.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
