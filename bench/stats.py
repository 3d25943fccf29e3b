"""Bootstrap intervals for the bench's medians (95 %, percentile method; a fixed seed, so a table is reproducible
from its samples)."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence

RESAMPLES = 2000


def median_interval(values: Sequence[float], resamples: int = RESAMPLES, seed: int = 1) -> tuple[float, float]:
    """95 % interval of the median of ``values``."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def median_difference_interval(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES,
                               seed: int = 1) -> tuple[float, float]:
    """95 % interval of median(``b``) - median(``a``), each side resampled on its own."""
    rng = random.Random(seed)
    differences = sorted(statistics.median(rng.choices(b, k=len(b))) - statistics.median(rng.choices(a, k=len(a)))
                         for _ in range(resamples))
    return differences[int(0.025 * resamples)], differences[int(0.975 * resamples) - 1]


def verdict(interval: tuple[float, float], goal: float) -> str:
    """"met" where the interval ends within ``goal``, "NOT met" where it starts above, else "unresolved"."""
    low, high = interval
    return "met" if high <= goal else "NOT met" if low > goal else "unresolved"
