"""Summary statistics of per-batch samples, driven by one ``fields`` tuple (as pytest-benchmark's Stats)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

#: coefficient of variation at or above which a measurement is flagged unstable (pyperf's rule)
UNSTABLE_CV = 0.10


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default, 'linear'), on already sorted values."""
    n = len(sorted_values)
    if n == 1:
        return float(sorted_values[0])
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


@dataclass(frozen=True)
class Stats:
    """Statistics of a list of samples. ``fields`` names every statistic, in output order."""

    fields = ("n", "median", "q1", "q3", "iqr", "mean", "stdev", "cv", "min", "max")

    n: int
    median: float
    q1: float
    q3: float
    iqr: float
    mean: float
    stdev: float
    cv: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stats":
        if not values:
            raise ValueError("Stats.of needs at least one sample")
        v = sorted(float(x) for x in values)
        mean = statistics.fmean(v)
        stdev = statistics.stdev(v) if len(v) > 1 else 0.0
        q1, q3 = _quantile(v, 0.25), _quantile(v, 0.75)
        return cls(
            n=len(v),
            median=_quantile(v, 0.5),
            q1=q1,
            q3=q3,
            iqr=q3 - q1,
            mean=mean,
            stdev=stdev,
            cv=(stdev / mean) if mean else 0.0,
            min=v[0],
            max=v[-1],
        )

    @property
    def unstable(self) -> bool:
        return self.cv >= UNSTABLE_CV

    def as_dict(self) -> dict[str, float]:
        return {f: getattr(self, f) for f in self.fields}
