import statistics

import numpy as np
import pytest

from icb_bench.bench.stats import UNSTABLE_CV, Stats


def test_fields_drive_as_dict():
    s = Stats.of([1.0, 2.0, 3.0, 4.0])
    assert tuple(s.as_dict()) == Stats.fields


@pytest.mark.parametrize("values", [[5.0], [1, 2], [3, 1, 2], [1, 2, 3, 4, 100], list(np.random.default_rng(1).normal(10, 1, 257))])
def test_matches_numpy_quantiles(values):
    s = Stats.of(values)
    assert s.median == pytest.approx(float(np.median(values)))
    assert s.q1 == pytest.approx(float(np.quantile(values, 0.25)))
    assert s.q3 == pytest.approx(float(np.quantile(values, 0.75)))
    assert s.iqr == pytest.approx(s.q3 - s.q1)
    assert s.min == min(values) and s.max == max(values)
    if len(values) > 1:
        assert s.stdev == pytest.approx(statistics.stdev(values))


def test_median_not_max_is_headline():
    s = Stats.of([100, 100, 100, 150])
    assert s.median == 100


def test_unstable_threshold():
    steady = Stats.of([100, 101, 99, 100])
    noisy = Stats.of([50, 100, 150, 100])
    assert not steady.unstable
    assert noisy.unstable and noisy.cv >= UNSTABLE_CV


def test_empty_rejected():
    with pytest.raises(ValueError):
        Stats.of([])
