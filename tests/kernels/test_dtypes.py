"""GEMM dtype table, parsing and support probing."""

from __future__ import annotations

import pytest
import torch

from icb_bench.kernels.dtypes import (
    DEFAULT_DTYPES,
    DTYPES,
    get_dtype,
    parse_dtypes,
    probe_dtypes,
    probe_supported,
)


def test_table_names_every_type_exactly() -> None:
    assert set(DTYPES) == {"fp16", "bf16", "fp32", "tf32", "fp8", "int8"}
    assert DEFAULT_DTYPES == ("fp16", "fp32")
    expect = {
        "fp16": ("float16", "float32", "float16"),
        "bf16": ("bfloat16", "float32", "bfloat16"),
        "fp32": ("float32", "float32", "float32"),
        "tf32": ("float32", "float32", "float32"),
        "fp8": ("float8_e4m3fn", "float32", "bfloat16"),
        "int8": ("int8", "int32", "int32"),
    }
    for name, (inp, acc, out) in expect.items():
        d = DTYPES[name]
        assert (d.inputs, d.accumulate, d.output) == (inp, acc, out)
        assert isinstance(d.torch_dtype("inputs"), torch.dtype)
        assert d.peak_key == name
    assert DTYPES["tf32"].multiply == "tf32" and DTYPES["fp32"].multiply == "float32"
    assert DTYPES["int8"].exact and not DTYPES["fp16"].exact
    assert DTYPES["fp8"].b_col_major and DTYPES["fp8"].op == "scaled_mm"
    assert DTYPES["int8"].op == "int_mm"
    assert DTYPES["fp32"].tolerance < DTYPES["tf32"].tolerance
    assert DTYPES["fp16"].tolerance < DTYPES["bf16"].tolerance < DTYPES["fp8"].tolerance


def test_parse_dtypes() -> None:
    assert parse_dtypes("fp16,fp32") == ("fp16", "fp32")
    assert parse_dtypes(" BF16 , fp16,bf16,") == ("bf16", "fp16")
    with pytest.raises(ValueError, match=r"'fp64'.*valid: fp16, bf16, fp32, tf32, fp8, int8"):
        parse_dtypes("fp16,fp64")
    with pytest.raises(ValueError, match="no GEMM dtype"):
        parse_dtypes(" , ")
    with pytest.raises(ValueError, match="valid"):
        get_dtype("half")


def test_probe_supported_cpu(cpu) -> None:
    reasons = probe_dtypes(cpu, 0)
    assert set(reasons) == set(DTYPES)
    supported = probe_supported(cpu, 0)
    assert {"fp16", "bf16", "fp32"} <= set(supported)
    # the CPU multiplies FP32 exactly even in "high" precision: calling that TF32 would be a lie
    assert "tf32" not in supported
    assert "no TF32" in reasons["tf32"]
    assert supported == [n for n in DTYPES if n in supported]  # table order


def test_probe_reports_backend_refusal(cpu, monkeypatch) -> None:
    monkeypatch.setattr(
        cpu, "dtype_unsupported_reason", lambda index, d: "needs sm_89" if d == "fp8" else None
    )
    reasons = probe_dtypes(cpu, 0, ("fp8", "fp32"))
    assert reasons == {"fp8": "needs sm_89", "fp32": None}


def test_probe_catches_failing_kernel(cpu, monkeypatch) -> None:
    from icb_bench.kernels import gemm

    def broken(self):  # noqa: ANN001
        raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'")

    monkeypatch.setattr(gemm.GemmWorkload, "_make_mm", broken)
    reasons = probe_dtypes(cpu, 0, ("fp16",))
    assert reasons["fp16"] and "not implemented" in reasons["fp16"]
