"""From a sample of devices to a declared count: the mean per device and its confidence interval.

Method (chosen for the assessor, who must defend the figure):

* **Estimator: the mean, with failed or invalid devices as zero.** The site figure is a *total*
  (Σ over devices), and mean × count is the unbiased estimator of a total under random sampling;
  a median × count is not, and it would hide up to half the devices failing (3 of 4 failing: the
  median of the correct ones is the full figure, the mean is a quarter of it).
* **Interval: Student t of the mean with the finite-population correction** (Cochran, *Sampling
  Techniques*, §2.15): ``mean ± t(0.975, n−1) · s/√n · √((N−n)/(N−1))`` for ``n`` of ``N``
  devices, clipped at zero. It is built from the device-to-device spread ``s``, which is what an
  extrapolation to unmeasured devices must answer for (a device's own batch IQR says nothing
  about its neighbours); it is a closed form, so the same records always give the same bounds
  (no resampling, no seed), and the correction narrows it honestly to a point when every device
  was measured (a census). A bootstrap was rejected: at the small samples this check meets most
  often (2–10 devices) its percentile interval is at most the sample range and under-covers.
* **One device of many has no spread estimate**: no interval, so it cannot support CONFIRMED.

``fmean`` and ``stdev`` from :mod:`statistics` are correctly rounded (exact sums), so the result
does not depend on the order the records were read in.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

__all__ = ["MeanInterval", "mean_interval", "quantile", "median_ci", "CONFIDENCE"]

#: two-sided confidence of every interval in this package
CONFIDENCE = 0.95


@dataclass(frozen=True)
class MeanInterval:
    """The mean of ``n`` sampled values standing for ``population`` and its confidence interval."""

    n: int
    population: int
    mean: float
    stdev: float | None  # sample standard deviation (None for one value)
    low: float | None  # None: no interval (one device of many)
    high: float | None
    method: str  # "t+fpc", "census" or "single"


def _t_quantile(p: float, dof: int) -> float:
    from scipy.stats import t  # lazily: scipy is only needed once a model has two or more devices

    return float(t.ppf(p, dof))


def mean_interval(values: Sequence[float], population: int, confidence: float = CONFIDENCE) -> MeanInterval:
    """Mean of ``values`` (one per measured device; failed ones as 0.0) and the t interval of the
    mean with the finite-population correction for ``population`` devices (see the module doc)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = statistics.fmean(values)
    if n >= population:  # every declared device measured (or more than declared): no extrapolation
        sd = statistics.stdev(values) if n > 1 else None
        return MeanInterval(n, population, mean, sd, mean, mean, "census")
    if n == 1:
        return MeanInterval(n, population, mean, None, None, None, "single")
    sd = statistics.stdev(values)
    fpc = math.sqrt((population - n) / (population - 1))
    half = _t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) * fpc
    return MeanInterval(n, population, mean, sd, max(0.0, mean - half), mean + half, "t+fpc")


def quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted ``xs`` (numpy's default)."""
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median_ci(xs: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free ~95 % confidence interval of the median of sorted ``xs`` (order statistics)."""
    n = len(xs)
    half = z * math.sqrt(n) / 2
    lo = max(int(math.floor(n / 2 - half)), 1)
    hi = min(int(math.ceil(n / 2 + 1 + half)), n)
    return xs[lo - 1], xs[hi - 1]
