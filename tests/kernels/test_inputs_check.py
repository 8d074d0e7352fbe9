"""Auditable inputs (regenerated row by row on the CPU) and the degenerate-input refusal."""

from __future__ import annotations

import pytest
import torch

from icb_bench.kernels import inputs
from icb_bench.kernels.check import DegenerateInputs, compare_samples, inspect_inputs
from icb_bench.kernels.dtypes import DTYPES
from icb_bench.kernels.gemm import GemmShape, GemmWorkload

SHAPE = GemmShape(100, 72, 96)  # rows not a multiple of the 16-row blocks


def _host_workload(cpu, dtype: str, seed: int = 5) -> GemmWorkload:
    try:
        return GemmWorkload(cpu, 0, dtype, SHAPE, seed=seed, inputs="host-rows")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"{dtype} not available on this CPU build: {exc}")


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_audit_regenerates_exactly_the_run_inputs(cpu, dtype: str) -> None:
    with _host_workload(cpu, dtype) as wl:
        assert wl.input_source == inputs.GENERATOR
        rows = [0, 15, 16, 57, 99]
        cols = [0, 31, 71]
        a = inputs.host_rows(wl.spec, SHAPE, 5, "A", rows)
        bt = inputs.host_rows(wl.spec, SHAPE, 5, "Bt", cols)
        assert torch.equal(a, wl.a[rows].to(torch.float64))
        assert torch.equal(bt, wl.b[:, cols].t().to(torch.float64))
        assert wl.describe()["input_health"]["ok"] is True


def test_fill_does_not_depend_on_copy_block_size(cpu, monkeypatch) -> None:
    with _host_workload(cpu, "fp16") as wl:
        a0 = wl.a.clone()
        monkeypatch.setattr(inputs, "_COPY_ELEMENTS", 3 * SHAPE.k)  # copies of 16 rows at a time
        inputs.fill(wl.a, wl.spec, SHAPE.k, 5, "A")
        assert torch.equal(wl.a, a0)


def test_seeds_and_matrices_give_different_inputs(cpu) -> None:
    spec = DTYPES["fp32"]
    a5 = inputs.host_rows(spec, SHAPE, 5, "A", [0])
    assert not torch.equal(a5, inputs.host_rows(spec, SHAPE, 6, "A", [0]))
    assert not torch.equal(a5[:, :72], inputs.host_rows(spec, SHAPE, 5, "Bt", [0])[:, :72])
    with pytest.raises(IndexError):
        inputs.host_rows(spec, SHAPE, 5, "A", [SHAPE.m])


def _fake_block(kind: str):
    def block(spec, k, seed, matrix, chunk, rows):
        if kind == "zero":
            x = torch.zeros((rows, k))
        elif kind == "constant":
            x = torch.full((rows, k), 0.25)
        elif kind == "low-rank":  # rank 2, whatever the block
            base = torch.arange(k, dtype=torch.float32) / k
            x = torch.stack([base * ((r % 3) + 1) + (r % 2) for r in range(chunk * 16, chunk * 16 + rows)])
        else:
            raise AssertionError(kind)
        return x.to(spec.torch_dtype("inputs"))

    return block


@pytest.mark.parametrize("kind", ["zero", "constant", "low-rank"])
@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_degenerate_inputs_are_refused_before_the_run(cpu, monkeypatch, kind: str, dtype: str) -> None:
    monkeypatch.setattr(inputs, "_block", _fake_block(kind))
    with pytest.raises(DegenerateInputs, match="degenerate inputs refused before the run") as info:
        GemmWorkload(cpu, 0, dtype, GemmShape(256, 256, 256), seed=1, inputs="host-rows")
    assert ("norm" in str(info.value)) if kind == "zero" else ("rank" in str(info.value))


def test_degenerate_device_generator_is_refused_too(cpu, monkeypatch) -> None:
    """The fast path (shape search) is checked the same way: a generator returning zeros fails."""
    monkeypatch.setattr(GemmWorkload, "_fill_random", lambda self, dst, gen, dev: dst.zero_())
    with pytest.raises(DegenerateInputs):
        GemmWorkload(cpu, 0, "bf16", GemmShape(128, 128, 128), seed=1)


def test_inspect_inputs_details() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(512, 256, generator=gen)
    b = torch.randn(256, 384, generator=gen)
    ok = inspect_inputs(a, b)
    assert ok.ok and ok.sketch_columns == 32
    assert min(ok.sketch_ratio.values()) > 0.2 and min(ok.min_row_norm_ratio.values()) > 0.5
    one_zero_column = b.clone()
    one_zero_column[:, 7] = 0
    bad = inspect_inputs(a, one_zero_column)
    assert not bad.ok and "column of B 7" in bad.reason
    nan = a.clone()
    nan[3, 3] = float("nan")
    assert "NaN or Inf" in inspect_inputs(nan, b).reason
    tiny = inspect_inputs(torch.randn(8, 8, generator=gen), torch.randn(8, 8, generator=gen))
    assert tiny.ok and tiny.sketch_columns == 0  # too small for a rank test; norms still checked


def test_zero_norm_samples_fail_instead_of_dividing_by_one() -> None:
    """Zero inputs give zero outputs and zero references: that must be an error, not 0/1 = 0."""
    spec = DTYPES["fp32"]
    zeros = torch.zeros(4, 64, dtype=torch.float64)
    out = torch.zeros(4, dtype=torch.float32)
    pos = (torch.arange(4), torch.arange(4))
    res = compare_samples(out, zeros, zeros, spec, 64, pos)
    assert not res.valid and res.zero_norm_count == 4
    assert "zero-norm input" in res.reason
