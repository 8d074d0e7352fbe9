"""rack_check's hot helpers: the fast paths give what the general rule gives, value for value."""

from __future__ import annotations

import bisect
import math
import random
from itertools import accumulate

import pytest

from icb_bench.verify.rack_check import finite, window_flops


class _Float(float):
    """A float subclass: not on the fast path, still a number."""


@pytest.mark.parametrize("v, want", [
    (1.5, 1.5), (-0.0, -0.0), (0.0, 0.0), (1e308, 1e308), (math.inf, None), (-math.inf, None), (math.nan, None),
    (3, 3.0), (True, None), (False, None), ("1.0", None), (None, None), ([1.0], None), (_Float(2.5), 2.5),
    (_Float(math.nan), None),
])
def test_finite(v, want):
    got = finite(v)
    assert got == want and type(got) is type(want)
    if isinstance(want, float):
        assert math.copysign(1, got) == math.copysign(1, want)


def _reference(m, offset_s, t0, t1):
    """The rule as the module docstring states it, written plainly: batches stretched to the core
    phase, the batch across an edge pro-rated."""
    bt = m["samples"]["batch_time_ms"]
    cum = list(accumulate(bt))
    b, e = m["core_window"]["t_begin_s"], m["core_window"]["t_end_s"]
    scale_s, begin = (e - b) / cum[-1], b - offset_s

    def done(t):
        u = (t - begin) / scale_s
        if u <= 0:
            return 0.0
        if u >= cum[-1]:
            return float(len(cum))
        i = bisect.bisect_right(cum, u)
        return i + (u - (cum[i - 1] if i else 0.0)) / bt[i]

    return m["flops_per_gemm"] * m["samples"]["iters_per_batch"] * (done(t1) - done(t0))


def _m(bt, b, e):
    return {"flops_per_gemm": 3e12, "samples": {"batch_time_ms": bt, "iters_per_batch": 7},
            "core_window": {"t_begin_s": b, "t_end_s": e}}


def test_window_flops_bit_for_bit_on_every_edge():
    rng = random.Random(11)
    for _ in range(3000):
        bt = [rng.choice([rng.uniform(0.5, 50), 10.0]) for _ in range(rng.randint(1, 30))]
        b = rng.uniform(-10, 100)
        e = b + sum(bt) / 1000 * rng.uniform(1.0, 1.5)
        off = rng.choice([0.0, rng.uniform(-3, 3)])
        # windows before, across, inside and beyond the phase, and exactly on its edges
        t0 = rng.choice([b - off, b - off - 1, rng.uniform(b - off - 2, e - off + 1), e - off])
        t1 = rng.choice([e - off, e - off + 5, t0, t0 + rng.uniform(0, e - b + 2)])
        m = _m(bt, b, e)
        assert window_flops(m, off, t0, t1) == _reference(m, off, t0, t1)


def test_a_window_holding_the_whole_phase_counts_every_batch():
    m = _m([10.0] * 12, 1000.0, 1000.12)
    assert window_flops(m, 0.0, 999.0, 1001.0) == 3e12 * 7 * 12
    on_edges = window_flops(m, 0.0, 1000.0, 1000.12)
    assert on_edges == _reference(m, 0.0, 1000.0, 1000.12) and on_edges == pytest.approx(3e12 * 7 * 12, rel=1e-12)
    assert window_flops(m, 0.0, 1001.0, 1002.0) == 0.0


@pytest.mark.parametrize("change, message", [
    ({"samples": {"batch_time_ms": [], "iters_per_batch": 7}}, "no samples.batch_time_ms"),
    ({"samples": {"batch_time_ms": [1.0, "x"], "iters_per_batch": 7}}, "not a positive number"),
    ({"samples": {"batch_time_ms": [1.0, 0.0], "iters_per_batch": 7}}, "not a positive number"),
    ({"samples": {"batch_time_ms": [1.0, math.inf], "iters_per_batch": 7}}, "not a positive number"),
    ({"samples": {"batch_time_ms": [1.0], "iters_per_batch": True}}, "no samples.batch_time_ms"),
    ({"flops_per_gemm": True}, "no flops_per_gemm or core_window"),
    ({"core_window": {"t_begin_s": 5.0, "t_end_s": 5.0}}, "no flops_per_gemm or core_window"),
    ({"flops_total": 1.0}, "not its flops_total 1"),
])
def test_what_does_not_add_up_is_refused(change, message):
    m = {**_m([10.0] * 12, 1000.0, 1000.12), **change}
    with pytest.raises(ValueError, match=message):
        window_flops(m, 0.0, 1000.0, 1000.12)
