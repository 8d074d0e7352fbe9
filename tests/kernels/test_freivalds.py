"""Freivalds' full-output check on the CPU: correct outputs pass, a wrong tile never does."""

from __future__ import annotations

import math

import pytest
import torch

from icb_bench.kernels import freivalds
from icb_bench.kernels.check import INT32_POISON
from icb_bench.kernels.gemm import GemmShape, GemmWorkload

SQUARE = GemmShape(512, 512, 512)
FLOAT_DTYPES = ["fp32", "tf32", "fp16", "bf16"]


def _workload(cpu, dtype: str, shape: GemmShape = SQUARE, seed: int = 3) -> GemmWorkload:
    try:
        wl = GemmWorkload(cpu, 0, dtype, shape, seed=seed, inputs="host-rows")
        wl.run_timed(1, n_batches=1)
    except Exception as exc:  # noqa: BLE001 - fp8/int8 CPU kernels depend on the torch build
        pytest.skip(f"{dtype} not runnable on this CPU build: {exc}")
    return wl


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + ["fp8", "int8"])
def test_correct_output_passes_for_many_vectors(cpu, dtype: str) -> None:
    with _workload(cpu, dtype) as wl:
        for seed in range(8):  # fixed seeds: deterministic, and none may raise a false alarm
            r = wl.freivalds(seed)
            assert r.passed, r.reason
            assert r.trials == 2 and r.vectors_per_trial == 16
            assert r.max_stat <= r.tolerance
        assert r.compute == freivalds.RULES[dtype].compute
        assert r.time_s > 0 and r.place == "device"
        if dtype == "int8":
            assert r.max_stat == 0.0 and r.tolerance == 0.0
        else:  # comfortably inside the derived tolerance, not at its edge
            assert r.max_stat < r.tolerance / 3


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + ["fp8", "int8"])
@pytest.mark.parametrize("corruption", ["zero", "neighbour", "scaled"])
def test_one_wrong_16x16_tile_of_512_is_always_caught(cpu, dtype: str, corruption: str) -> None:
    """The 3 %-detection case of the sampled check, at CPU scale: one wrong tile among 1024."""
    with _workload(cpu, dtype) as wl:
        good = wl.c.clone()
        caught = 0
        for t, (i, j) in enumerate([(0, 0), (496, 496), (128, 320), (256, 48), (384, 176)]):
            wl.c.copy_(good)
            tile = wl.c[i:i + 16, j:j + 16]
            if corruption == "zero":
                tile.zero_()
            elif corruption == "neighbour":  # a stale tile: the values of the one to its left/right
                src = j - 16 if j >= 16 else j + 16
                tile.copy_(good[i:i + 16, src:src + 16])
            else:  # every element off by a third of its size
                tile.copy_((tile.to(torch.float64) * (4 / 3) + (3 if wl.spec.exact else 0)).to(tile.dtype))
            r = wl.freivalds(seed=100 + t)
            caught += not r.passed
            assert set(r.failed_rows) <= set(range(i, i + 16)), r.failed_rows
            assert "Freivalds" in r.reason
        assert caught == 5


def test_every_element_is_covered_not_just_samples(cpu) -> None:
    """A wrong element the sampled check never looks at still fails Freivalds (at full size)."""
    with _workload(cpu, "fp32") as wl:
        rows, cols = wl.sample_positions()
        sampled = set(zip(rows.tolist(), cols.tolist()))
        i, j = next((a, b) for a in range(512) for b in range(512) if (a, b) not in sampled)
        wl.c[i, j] += 10.0
        assert wl.check().valid  # the 256 samples miss it
        r = wl.freivalds(seed=1)
        assert not r.passed and r.failed_rows == [i]


def test_nan_poison_and_int_poison_fail(cpu) -> None:
    with _workload(cpu, "fp16") as wl:
        wl.c[7, 9] = float("nan")
        assert not wl.freivalds(seed=1).passed
        wl.poison()  # as if the run never wrote C
        r = wl.freivalds(seed=1)
        assert not r.passed and len(r.failed_rows) == 32  # the first 32 of 512 listed
    with _workload(cpu, "int8", GemmShape(64, 64, 128)) as wl:
        wl.c[3, 5] = INT32_POISON
        assert not wl.freivalds(seed=1).passed
        wl.run_timed(1, n_batches=1)
        wl.c[3, 5] += 1  # off by one is wrong for an exact GEMM
        r = wl.freivalds(seed=1)
        assert not r.passed and r.failed_rows == [3]


def test_zero_norm_row_is_not_scored_as_one(cpu, monkeypatch) -> None:
    """A zero row of A makes S_i = 0: any output there is wrong (no silent replacement by 1)."""
    with _workload(cpu, "fp32", GemmShape(64, 64, 64)) as wl:
        wl.a[5].zero_()
        wl.c[5] = 1.0  # what a kernel ignoring that row might leave
        r = wl.freivalds(seed=2)
        assert not r.passed and 5 in r.failed_rows


def test_tolerance_derivation_per_dtype() -> None:
    n = k = 16384
    u32 = 2.0**-24
    fp16 = freivalds.SAFETY * (2.0**-11 + 4 * u32 * math.sqrt(k) + 4 * u32 * (math.sqrt(n) + math.sqrt(k)))
    assert freivalds.epsilon("fp16", n, k) == pytest.approx(fp16)
    assert freivalds.tolerance("fp16", n, k) == pytest.approx(freivalds.TAIL_SIGMAS * fp16)
    # coarser outputs get wider tolerances; fp32 is checked in FP64, int8 exactly
    assert freivalds.tolerance("fp32", n, k) < freivalds.tolerance("fp16", n, k) < freivalds.tolerance("bf16", n, k)
    assert freivalds.tolerance("tf32", n, k) > freivalds.tolerance("fp32", n, k)
    assert freivalds.RULES["fp32"].compute == "float64" and freivalds.RULES["bf16"].compute == "float32"
    assert freivalds.tolerance("int8", n, k) == 0.0
    with pytest.raises(ValueError, match="no Freivalds rule"):
        freivalds.epsilon("fp4", n, k)


def test_stated_miss_probabilities() -> None:
    """The bounds the report quotes: one 128×256 tile of a 16384² output, one 16×16 of 512²."""
    assert freivalds.miss_bound("fp16", 16384, 16384) < 1e-30
    assert freivalds.miss_bound("bf16", 16384, 16384) < 1e-10
    assert freivalds.miss_bound("fp8", 16384, 16384) < 1e-10
    assert freivalds.miss_bound("fp32", 16384, 16384) < 1e-60
    assert freivalds.miss_bound("int8", 16384, 16384) < 1e-100
    assert freivalds.miss_bound("bf16", 512, 512, tile_cols=16) < 1e-15
    # int8's vectors shrink where k·n is huge, so every FP64 sum stays exact
    assert freivalds.int_r_max(1 << 20, 1 << 20) == 2 and freivalds.int_r_max(16384, 16384) == 1024
