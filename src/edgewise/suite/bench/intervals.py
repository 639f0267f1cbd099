"""Which differences in a bench table are real: 95% intervals on means (percentile bootstrap over runs) and paired
comparisons of two methods over the runs they share (the same task, graph, ablation and seed), by a bootstrap of the
mean paired difference. A difference "holds" when its interval excludes 0.

Pure Python with a seeded generator, so that a summary is the same on every machine and run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

RESAMPLES = 2000  # bootstrap resamples behind each interval
LEVEL = 0.95


def _quantile(sorted_values: list[float], q: float) -> float:
    """Returns the q-quantile of sorted values, interpolating linearly between order statistics."""
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def mean_interval(values: list[float], seed: int = 0) -> tuple[float, float] | None:
    """Returns a 95% percentile-bootstrap interval of the mean of `values` (resampling the values), or None for
    fewer than 2 values.

    Args:
        values: one figure per run.
        seed: the bootstrap's seed.

    Returns:
        (low, high), or None.
    """
    if len(values) < 2:
        return None
    generator = random.Random(seed)
    n = len(values)
    means = sorted(sum(generator.choices(values, k=n)) / n for _ in range(RESAMPLES))
    tail = (1 - LEVEL) / 2
    return _quantile(means, tail), _quantile(means, 1 - tail)


@dataclass(frozen=True)
class PairedDifference:
    """The mean difference a - b over the runs two methods share, with its 95% bootstrap interval.

    Attributes:
        a: the first method.
        b: the second method.
        n_pairs: the runs both have.
        difference: the mean of a - b over them.
        interval: its 95% interval, or None for fewer than 2 pairs.
    """

    a: str
    b: str
    n_pairs: int
    difference: float
    interval: tuple[float, float] | None

    @property
    def holds(self) -> bool:
        """Returns whether the difference holds at 95%: its interval lies wholly above or below 0."""
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)

    def to_dict(self) -> dict:
        """Returns the comparison as JSON values."""
        return {
            "a": self.a,
            "b": self.b,
            "n_pairs": self.n_pairs,
            "difference": self.difference,
            "interval": None if self.interval is None else list(self.interval),
            "holds": self.holds,
        }


def paired_difference(a: str, b: str, values_a: dict, values_b: dict, seed: int = 0) -> PairedDifference | None:
    """Returns the paired comparison of two methods over the runs both have, or None when they share none.

    Args:
        a: the first method's name.
        b: the second method's name.
        values_a: the first method's figure by run (a key naming task, graph, ablation and seed).
        values_b: the second's, by the same keys.
        seed: the bootstrap's seed.

    Returns:
        The comparison, or None.
    """
    shared = [key for key in values_a if key in values_b]
    if not shared:
        return None
    differences = [values_a[key] - values_b[key] for key in shared]
    return PairedDifference(a, b, len(shared), sum(differences) / len(differences), mean_interval(differences, seed))
