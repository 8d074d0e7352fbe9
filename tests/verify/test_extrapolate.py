"""The extrapolation interval: Student t of the mean with the finite-population correction."""

from __future__ import annotations

import math
import random

import pytest

from icb_bench.verify.extrapolate import mean_interval

T_0975_3DOF = 3.182446305284263  # Student t, 97.5 % quantile, 3 degrees of freedom (tables)


def test_t_interval_with_fpc_by_hand():
    xs = [700.0, 0.0, 0.0, 0.0]  # 3 of 4 failed: zeros, not dropped
    mi = mean_interval(xs, 40)
    mean, sd = 175.0, 350.0  # s = √(Σ(x−175)² / 3) = √(367500/3)
    half = T_0975_3DOF * sd / math.sqrt(4) * math.sqrt(36 / 39)
    assert (mi.n, mi.population, mi.method) == (4, 40, "t+fpc")
    assert mi.mean == 175.0 and mi.stdev == pytest.approx(sd, rel=1e-15)
    assert mi.low == 0.0  # clipped: throughput is not negative
    assert mi.high == pytest.approx(mean + half, rel=1e-12)


def test_fpc_narrows_towards_the_census():
    xs = [float(x) for x in range(600, 700, 5)]  # 20 devices
    widths = [mean_interval(xs, n).high - mean_interval(xs, n).low for n in (10_000, 200, 40, 21)]
    assert widths == sorted(widths, reverse=True)
    census = mean_interval(xs, 20)
    assert census.method == "census" and census.low == census.high == census.mean


def test_one_of_many_has_no_interval():
    mi = mean_interval([900.0], 300)
    assert mi.method == "single" and mi.low is None and mi.high is None and mi.stdev is None
    assert mean_interval([900.0], 1).method == "census"


def test_deterministic_whatever_the_order():
    rng = random.Random(7)
    xs = [rng.uniform(0.0, 1000.0) for _ in range(500)] + [0.0] * 20
    first = mean_interval(xs, 5000)
    for _ in range(5):
        rng.shuffle(xs)
        assert mean_interval(xs, 5000) == first  # exact equality: correctly rounded sums


def test_empty_is_an_error():
    with pytest.raises(ValueError):
        mean_interval([], 10)
